## Export the real data sets bundled with lmm from R's lme4, nlme and geepack packages.
##
## Run from the repository root:   Rscript tests/reference/export_datasets.R
##
## Writes python/lmm/datasets/data/<name>.csv (InstEval gzipped) and merges one
## entry per data set into python/lmm/datasets/data/schema.json: the file name,
## the column order, each column's type, and for factors the levels in R's order
## (levels(x)) and whether the factor is ordered.  Re-running reproduces the files.
## The simulated data sets' entries in schema.json are written by
## python/lmm/datasets/simulate.py and are left untouched here.

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(jsonlite)
})

datadir <- file.path("python", "lmm", "datasets", "data")
stopifnot(dir.exists(datadir))
schema_path <- file.path(datadir, "schema.json")

sources <- list(
  sleepstudy = lme4::sleepstudy,
  dyestuff   = lme4::Dyestuff,
  dyestuff2  = lme4::Dyestuff2,
  penicillin = lme4::Penicillin,
  pastes     = lme4::Pastes,
  insteval   = lme4::InstEval,
  ## Machines is an nlme groupedData object; keep only the plain columns.
  machines   = as.data.frame(nlme::Machines)[, c("score", "Worker", "Machine")],
  ## Orthodont too (Subject stays ordered, as nlme defines it; Sex is a plain factor).
  orthodont  = as.data.frame(nlme::Orthodont)[, c("distance", "age", "Subject", "Sex")],
  ## statsmodels' MixedLM examples use geepack's dietox; Feed (72 missing values) is
  ## left out, since the bundled files hold no missing values.
  dietox     = geepack::dietox[, c("Weight", "Time", "Pig", "Evit", "Cu", "Litter", "Start")]
)
origin <- c(sleepstudy = "lme4", dyestuff = "lme4", dyestuff2 = "lme4",
            penicillin = "lme4", pastes = "lme4", insteval = "lme4",
            machines = "nlme", orthodont = "nlme", dietox = "geepack")

column_schema <- function(x, name) {
  if (is.factor(x)) {
    list(name = name, type = "factor", levels = as.list(levels(x)),
         ordered = is.ordered(x))
  } else if (is.integer(x)) {
    list(name = name, type = "int64")
  } else if (is.double(x)) {
    list(name = name, type = "float64")
  } else stop("unsupported column type for ", name)
}

schema <- if (file.exists(schema_path)) {
  fromJSON(schema_path, simplifyVector = FALSE)
} else list()

for (nm in names(sources)) {
  df <- as.data.frame(sources[[nm]])
  attributes(df) <- attributes(df)[c("names", "row.names", "class")]
  class(df) <- "data.frame"
  stopifnot(!anyNA(df))
  gz <- nrow(df) > 10000
  file <- paste0(nm, if (gz) ".csv.gz" else ".csv")
  out <- df
  for (j in seq_along(out)) {
    if (is.factor(out[[j]])) out[[j]] <- as.character(out[[j]])
    ## Full precision; these values are short decimals, so %.15g round-trips.
    else if (is.double(out[[j]])) {
      out[[j]] <- sprintf("%.15g", out[[j]])
      stopifnot(identical(as.numeric(out[[j]]), df[[j]]))
    }
  }
  con <- if (gz) gzfile(file.path(datadir, file), "w") else file(file.path(datadir, file), "w")
  write.csv(out, con, row.names = FALSE, quote = FALSE)
  close(con)
  schema[[nm]] <- list(
    file = file,
    source = origin[[nm]],
    nrow = nrow(df),
    columns = unname(Map(column_schema, df, names(df)))
  )
  cat(sprintf("%-11s %6d rows -> %s\n", nm, nrow(df), file))
}

## One line per data set, sorted by name; simulate.py writes the same layout.
schema <- schema[sort(names(schema))]
entries <- vapply(schema, function(e) as.character(toJSON(e, auto_unbox = TRUE)), "")
writeLines(c("{", paste0("\"", names(schema), "\": ", entries,
                         c(rep(",", length(entries) - 1), "")), "}"),
           schema_path)
