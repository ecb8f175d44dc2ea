## Reference values for contrasts in lmm's formulas and for anova tables of types 1, 2
## and 3: lmerTest (Satterthwaite and Kenward-Roger ddf, and ddf = "lme4") on Debian's
## lme4 1.1.x, with lmerTest's contrast matrices ("hypotheses") of every table. Fits:
## codings (sum, Helmert, polynomial, the contrasts argument), an unbalanced two-factor
## design with a covariate (inside or outside interactions, nested in a factor, poly(),
## scale(), ns(), a logical), without an intercept, with a term whose column is aliased (its
## rows are NA, last) and with an empty cell (rank-deficient X).
##
## Run from the repository root, WITHOUT R_LIBS (lmerTest is Debian's, built for lme4 1.1.x):
##   Rscript tests/reference/make_contrasts_reference.R
## Writes tests/reference/contrasts_reference.json. The simulated data set is written
## into the JSON.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
  library(splines)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "contrasts_reference.json")

machines <- load_dataset("machines")
sleep <- load_dataset("sleepstudy")
## an ordered factor: Days in bands 0-2, 3-5, 6-8, 9 (default contrasts contr.poly)
sleep$band <- factor(sleep$Days %/% 3, levels = 0:3, labels = c("d0_2", "d3_5", "d6_8", "d9"),
                     ordered = TRUE)

## Two factors with an interaction and a covariate; every 7th row (from row 3) dropped,
## so the design is unbalanced.
set.seed(20260612)
sim <- expand.grid(A = c("a1", "a2", "a3"), B = c("b1", "b2"), g = sprintf("g%02d", 1:10),
                   rep = 1:2, stringsAsFactors = FALSE)
sim <- sim[-seq(3, nrow(sim), by = 7), ]
sim$x <- round(runif(nrow(sim), -1, 1), 3)
geff <- setNames(rnorm(10, sd = 1.5), sprintf("g%02d", 1:10))
sim$y <- round(20 + 1.2 * (sim$A == "a2") - 0.8 * (sim$A == "a3") + 0.5 * (sim$B == "b2") +
               0.9 * (sim$A == "a3" & sim$B == "b2") + 0.7 * sim$x + geff[sim$g] +
               rnorm(nrow(sim)), 4)
sim$rep <- NULL
rownames(sim) <- NULL
sim_frame <- sim
for (v in c("A", "B", "g")) sim[[v]] <- factor(sim[[v]])

## The same data with one cell empty (A = a3 and B = b2 removed): X is rank deficient.
sim_empty <- droplevels(sim[!(sim$A == "a3" & sim$B == "b2"), ])
rownames(sim_empty) <- NULL

data <- list(machines = machines, sleepstudy = sleep, simulated = sim, simulated_empty_cell = sim_empty)
ctrl <- optimizers$nloptwrap  # common.R

## a matrix as a list of rows (an empty list for a matrix without rows)
rows_of <- function(M) lapply(seq_len(nrow(M)), function(i) arr(unname(M[i, ])))

## contrasts_arg: lmer's contrasts = argument (a list of contrast function names)
record <- function(id, formula, dataset, contrasts_arg = NULL) {
  d <- data[[dataset]]
  m <- suppressMessages(lmerTest::lmer(as.formula(formula), data = d, control = ctrl,
                                       contrasts = contrasts_arg))
  stopifnot(inherits(m, "lmerModLmerTest"))
  an <- list()
  hyp <- list()
  for (t in 1:3) for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    a <- suppressMessages(anova(m, type = t, ddf = ddf))
    an[[sprintf("type%d_%s", t, if (ddf == "Satterthwaite") "satterthwaite" else "kenward_roger")]] <-
      frame(as.data.frame(a))
    if (ddf == "Satterthwaite")
      hyp[[sprintf("type%d", t)]] <- lapply(attr(a, "hypotheses"), rows_of)
  }
  an[["lme4"]] <- frame(as.data.frame(anova(m, ddf = "lme4")))
  X <- getME(m, "X")
  cat(sprintf("%-28s REML %.10f\n", id, REMLcrit(m)))
  list(id = id, formula = formula, dataset = dataset,
       contrasts_argument = if (is.null(contrasts_arg)) NULL else as.list(unlist(contrasts_arg)),
       REML = TRUE,
       beta = obj(fixef(m)), se = obj(sqrt(diag(as.matrix(vcov(m))))),
       objective = REMLcrit(m), sigma = sigma(m), theta = obj(getME(m, "theta")),
       X_columns = arr(colnames(X)),
       X_first_rows = lapply(seq_len(min(6, nrow(X))), function(i) arr(unname(X[i, ]))),
       contrasts_used = lapply(attr(X, "contrasts"), function(cc)
         if (is.character(cc)) cc else lapply(seq_len(nrow(cc)), function(i) arr(unname(cc[i, ])))),
       anova = an, hypotheses = hyp)
}

sum_AB <- list(A = "contr.sum", B = "contr.sum")
fits <- list(
  record("machines_C_sum", "score ~ C(Machine, contr.sum) + (1 | Worker)", "machines"),
  record("machines_C_helmert", "score ~ C(Machine, contr.helmert) + (1 | Worker)", "machines"),
  record("machines_contrasts_arg_sum", "score ~ Machine + (1 | Worker)", "machines",
         contrasts_arg = list(Machine = "contr.sum")),
  record("sleepstudy_ordered_poly", "Reaction ~ band + (1 | Subject)", "sleepstudy"),
  record("simulated_AB_x", "y ~ A * B + x + (1 | g)", "simulated"),
  record("simulated_AB_x_sum", "y ~ A * B + x + (1 | g)", "simulated", contrasts_arg = sum_AB),
  record("simulated_AB_x_helmert", "y ~ C(A, contr.helmert) * B + x + (1 | g)", "simulated"),
  record("simulated_Ax_B", "y ~ A * x + B + (1 | g)", "simulated"),
  record("simulated_Ax_B_sum", "y ~ A * x + B + (1 | g)", "simulated", contrasts_arg = sum_AB),
  record("simulated_ABx_sum", "y ~ A * B * x + (1 | g)", "simulated", contrasts_arg = sum_AB),
  record("simulated_A_poly_B", "y ~ A * poly(x, 2) + B + (1 | g)", "simulated"),
  record("simulated_A_sum_scale_B", "y ~ C(A, contr.sum) * scale(x) + B + (1 | g)", "simulated"),
  record("simulated_A_sum_ns_B", "y ~ C(A, contr.sum) * ns(x, df = 2) + B + (1 | g)", "simulated"),
  record("simulated_A_sum_logical_B", "y ~ C(A, contr.sum) * I(x > 0) + B + (1 | g)", "simulated"),
  record("simulated_noint_AB_x_sum", "y ~ 0 + A * B + x + (1 | g)", "simulated", contrasts_arg = sum_AB),
  record("simulated_A_sum_nested_x_B", "y ~ C(A, contr.sum) / x + B + (1 | g)", "simulated"),
  record("simulated_aliased_term", "y ~ A + x + I(2 * x) + B + (1 | g)", "simulated"),
  record("empty_cell_AB_x", "y ~ A * B + x + (1 | g)", "simulated_empty_cell"),
  record("empty_cell_AB_x_sum", "y ~ A * B + x + (1 | g)", "simulated_empty_cell", contrasts_arg = sum_AB),
  record("empty_cell_ABx", "y ~ A * B * x + (1 | g)", "simulated_empty_cell")
)

reference <- list(
  generated_by = "tests/reference/make_contrasts_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  optimizer = optimizer_text[["nloptwrap"]],
  notes = arr(c(
    "fits: REML fits by lmerTest::lmer; beta, se in model-matrix column order; X_columns and the first 6 rows of X; contrasts_used is attr(X, 'contrasts') (a function name or the contrast matrix as rows)",
    "anova: lmerTest's anova(fit, type = t, ddf = 'Satterthwaite' / 'Kenward-Roger') as {rows, <columns>} for types 1, 2, 3 (type<t>_satterthwaite, type<t>_kenward_roger), and anova(fit, ddf = 'lme4') (lme4's table: npar, Sum Sq, Mean Sq, F value)",
    "hypotheses: attr(anova(fit, type = t), 'hypotheses'), lmerTest's contrast matrix of each term (rows; columns in X_columns order; an empty list when the term has none)",
    "sleepstudy: band = ordered(Days %/% 3) with levels d0_2, d3_5, d6_8, d9 (contr.poly by default)",
    "simulated: A (a1..a3) x B (b1, b2) x g (g01..g10) x 2 replicates, rows 3, 10, 17, ... dropped; x uniform(-1, 1); factors with levels in sorted order",
    "simulated_empty_cell: the simulated data without the rows where A == 'a3' and B == 'b2' (an empty cell: lme4 drops the column Aa3:Bb2)")),
  simulated = frame(sim_frame),
  fits = fits
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
