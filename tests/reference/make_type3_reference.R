## Reference values for lmm's type III anova of terms contained in interactions
## (tests/test_inference.py): lmerTest's anova(fit, type = 3) with Satterthwaite and
## Kenward-Roger denominator df.
##
## Run from the repository root:   Rscript tests/reference/make_type3_reference.R
## Writes tests/reference/type3_reference.json. Kept apart from
## make_inference_reference.R so that adding these fits does not regenerate (and
## perturb) the other references. The simulated data set is written into the JSON.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(script_arg)) dirname(sub("^--file=", "", script_arg[1])) else file.path("tests", "reference")
source(file.path(here, "common.R"))
out_path <- file.path("tests", "reference", "type3_reference.json")

## sleepstudy with a factor made from Days; machines with a deterministic numeric x
## (x_i = ((7 i) mod 11) / 10, i = 1..n); a simulated unbalanced two-factor design.
sleep <- load_dataset("sleepstudy")
sleep$fday <- factor(ifelse(sleep$Days >= 5, "late", "early"), levels = c("early", "late"))
machines <- load_dataset("machines")
machines$x <- ((7 * seq_len(nrow(machines))) %% 11) / 10

set.seed(20240611)
sim <- expand.grid(A = c("a1", "a2", "a3"), B = c("b1", "b2"), g = sprintf("g%d", 1:8), rep = 1:2,
                   stringsAsFactors = FALSE)
sim <- sim[-sample(nrow(sim), 17), ]            # unbalanced cells
sim$x <- round(runif(nrow(sim), 0, 2), 3)
geff <- setNames(rnorm(8, sd = 2), sprintf("g%d", 1:8))
sim$y <- round(10 + 1.5 * (sim$A == "a2") - 1 * (sim$A == "a3") + 0.8 * (sim$B == "b2") +
               0.7 * (sim$A == "a3" & sim$B == "b2") + 0.5 * sim$x * (sim$B == "b2") +
               geff[sim$g] + rnorm(nrow(sim)), 4)
sim$rep <- NULL
rownames(sim) <- NULL
sim_frame <- sim
sim$A <- factor(sim$A)
sim$B <- factor(sim$B)
sim$g <- factor(sim$g)

data <- list(sleepstudy = sleep, machines = machines, simulated = sim)
ctrl <- optimizers$nloptwrap  # common.R

record <- function(id, formula, dataset) {
  m <- lmerTest::lmer(as.formula(formula), data = data[[dataset]], control = ctrl)
  stopifnot(inherits(m, "lmerModLmerTest"))
  cat(sprintf("%-22s done\n", id))
  list(id = id, formula = formula, dataset = dataset,
       anova_satterthwaite = frame(as.data.frame(anova(m, type = 3, ddf = "Satterthwaite"))),
       anova_kenward_roger = frame(as.data.frame(anova(m, type = 3, ddf = "Kenward-Roger"))))
}

fits <- list(
  record("sleepstudy_days_fday", "Reaction ~ Days * fday + (1 | Subject)", "sleepstudy"),
  record("machines_machine_x", "score ~ Machine * x + (1 | Worker)", "machines"),
  record("simulated_AB", "y ~ A * B + (1 | g)", "simulated"),
  record("simulated_ABx", "y ~ A * B * x + (1 | g)", "simulated")
)

reference <- list(
  generated_by = "tests/reference/make_type3_reference.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  notes = arr(c(
    "fits: lmerTest's anova(fit, type = 3) with ddf Satterthwaite and Kenward-Roger (REML fits)",
    "sleepstudy: fday = factor(ifelse(Days >= 5, 'late', 'early')); machines: x = ((7 * i) %% 11) / 10 for rows i = 1..n",
    "simulated: the data (A, B, g factors with levels in sorted order; x, y numeric)")),
  simulated = frame(sim_frame),
  fits = fits
)
writeLines(to_json(reference), out_path)
cat("wrote", out_path, "\n")
