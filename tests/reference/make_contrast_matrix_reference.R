## Reference fits for codings given as matrices (lme4's contrasts = list(f = M)):
## Machines with a named two-column matrix (fixed part, and a random slope on the same
## factor, which lme4 codes with R's default contrasts), an unnamed one, and a one-column
## matrix (model.matrix uses it as given: one column for Machine, a smaller model).
##
##   Rscript tests/reference/make_contrast_matrix_reference.R   (from the repository root)
## writes tests/reference/contrast_matrix_reference.json.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
source(file.path("tests", "reference", "common.R"))

machines <- load_dataset("machines")
named <- cbind(AvsB = c(1, -1, 0), ABvsC = c(1, 1, -2))
unnamed <- matrix(c(-1, 0, 1, 1, -2, 1), 3, 2)
cases <- list(
  named = list(formula = "score ~ Machine + (1 | Worker)", matrix = named),
  unnamed = list(formula = "score ~ Machine + (1 | Worker)", matrix = unnamed),
  random_slope = list(formula = "score ~ Machine + (Machine | Worker)", matrix = named),
  completed = list(formula = "score ~ Machine + (1 | Worker)", matrix = matrix(c(1, -1, 0), 3, 1))
)
fits <- list()
for (id in names(cases)) {
  c <- cases[[id]]
  m <- lmer(as.formula(c$formula), machines, REML = TRUE, contrasts = list(Machine = c$matrix),
            control = optimizers$bobyqa)
  fits[[id]] <- list(
    formula = c$formula,
    matrix = lapply(seq_len(nrow(c$matrix)), function(i) arr(c$matrix[i, ])),
    colnames = if (is.null(colnames(c$matrix))) NULL else arr(colnames(c$matrix)),
    objective = unname(REMLcrit(m)),
    theta = obj(getME(m, "theta")),
    beta = obj(fixef(m)),
    se = obj(sqrt(diag(as.matrix(vcov(m))))),
    sigma = sigma(m),
    Z_columns = arr(getME(m, "cnms")[[1]])
  )
}
out <- list(generated_by = "tests/reference/make_contrast_matrix_reference.R", R_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")), optimizer = optimizer_text[["bobyqa"]],
            fits = fits)
writeLines(to_json(out), file.path("tests", "reference", "contrast_matrix_reference.json"))
