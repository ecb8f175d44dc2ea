## Reference values for a known residual SD (lmm's sigma=): random-effects
## meta-analyses with known sampling variances, fitted by metafor, whose model is
## the linear mixed model  y_i = x_i'β + b_study + ... + e_i,  e_i ~ N(0, v_i):
## lmm's  lmer("yi ~ ... + (1 | study)", weights = 1 / vi, sigma = 1).
##
##   Rscript tests/reference/make_sigma_reference.R   (from the repository root)
## writes tests/reference/sigma_reference.json. Needs metafor (r-cran-metafor) and
## jsonlite. metafor's log-likelihoods are written as given; its REML one includes
## the term ½ log|X'X| (metafor's REMLf = TRUE default), which lme4's criterion does
## not: the tests compare criteria through the variance components and β instead,
## and the criterion itself against a dense likelihood built in the test.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
  library(lme4)  # (common.R checks for it; not used for the fits)
})
source(file.path("tests", "reference", "common.R"))

fit_record <- function(fit, formula, data_name, reml) {
  list(
    formula = formula,
    data = data_name,
    REML = reml,
    sigma2 = arr(fit$sigma2),          # variance components (τ² of each level)
    beta = obj(setNames(as.vector(fit$beta), rownames(fit$beta))),
    se = obj(setNames(as.vector(fit$se), rownames(fit$beta))),
    logLik = as.numeric(logLik(fit)),
    nobs = fit$k
  )
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$study <- factor(sprintf("s%02d", bcg$trial))
konst <- dat.konstantopoulos2011
konst$district <- factor(konst$district)
konst$school <- factor(konst$school)

fits <- list()
for (reml in c(TRUE, FALSE)) {
  method <- if (reml) "REML" else "ML"
  tag <- if (reml) "" else "_ML"
  m <- rma.mv(yi, vi, random = ~ 1 | study, data = bcg, method = method)
  fits[[paste0("bcg", tag)]] <- fit_record(m, "yi ~ 1 + (1 | study)", "bcg", reml)
  m <- rma.mv(yi, vi, mods = ~ ablat, random = ~ 1 | study, data = bcg, method = method)
  fits[[paste0("bcg_ablat", tag)]] <- fit_record(m, "yi ~ ablat + (1 | study)", "bcg", reml)
  m <- rma.mv(yi, vi, random = ~ 1 | district / school, data = konst, method = method)
  fits[[paste0("konstantopoulos", tag)]] <- fit_record(m, "yi ~ 1 + (1 | district/school)", "konstantopoulos",
                                                       reml)
}

out <- list(
  generated_by = "tests/reference/make_sigma_reference.R",
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  notes = paste("metafor rma.mv fits: sigma2 are the variances of the random effects in the order of",
                "the random formula (district, then school within district); the residual variances",
                "are the known vi."),
  data = list(
    bcg = frame(data.frame(study = as.character(bcg$study), yi = as.vector(bcg$yi), vi = bcg$vi,
                           ablat = bcg$ablat)),
    konstantopoulos = frame(data.frame(district = as.character(konst$district),
                                       school = as.character(konst$school),
                                       yi = konst$yi, vi = konst$vi))
  ),
  fits = fits
)
writeLines(to_json(out), file.path("tests", "reference", "sigma_reference.json"))
