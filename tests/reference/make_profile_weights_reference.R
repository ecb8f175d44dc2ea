## Profile intervals of a weighted fit (lme4's confint(method = "profile") with prior
## weights): sleepstudy with w = 1 + (Days %% 3) / 2.
##
##   Rscript tests/reference/make_profile_weights_reference.R   (from the repository root)
## writes tests/reference/profile_weights_reference.json.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
source(file.path("tests", "reference", "common.R"))

sleep <- load_dataset("sleepstudy")
sleep$w <- 1 + (sleep$Days %% 3) / 2
m <- lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w, control = optimizers$bobyqa)
ci <- confint(m, method = "profile", oldNames = TRUE)
out <- list(
  generated_by = "tests/reference/make_profile_weights_reference.R", R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  formula = "Reaction ~ Days + (Days | Subject)", weights = "1 + (Days %% 3) / 2",
  rows = arr(rownames(ci)), lower = arr(ci[, 1]), upper = arr(ci[, 2])
)
writeLines(to_json(out), file.path("tests", "reference", "profile_weights_reference.json"))
