# lme4 over many responses of one design (used by bench_many.py): a refit() loop and,
# for reference, a loop of lmer() calls on the same responses.
#   Rscript benchmarks/refit_lme4.R DESIGN.csv Y.bin NRESP FORMULA OUT.json
# DESIGN.csv: the design's columns (text columns become factors). Y.bin: NRESP responses,
# nrow(DESIGN) little-endian doubles each, one response after another. FORMULA: lme4's,
# with the response named y. OUT.json gets, per loop, its time (s, inside R: R's startup
# excluded) and per response θ, β, σ, REMLcrit and lme4's convergence messages.
#
# Why both loops: lme4's refit() (1.1-31 and its current source) rebuilds the response
# module with REML = isREML(object), TRUE, where lmer() passes the number of fixed
# effects p; the REML criterion refit() optimizes and reports is then the one for p = 1,
# (n - 1)(1 + log(2 pi r2 / (n - 1))) + ldL2 + ldRX2: another optimum whenever p > 1.
suppressMessages(library(lme4))
suppressMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = TRUE)
n <- nrow(data)
m <- as.integer(args[3])
Y <- matrix(readBin(args[2], "double", n * m, size = 8, endian = "little"), n, m)
form <- as.formula(args[4])
# Singular fits print a message and convergence checks warn: recorded below, not printed.
quiet <- function(expr) suppressWarnings(suppressMessages(expr))
# One small fit first (as fit_lme4.R does): the session's one-time costs are not the loops'.
invisible(quiet(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)))

# Runs fit_one(j) for every response, timing the loop with the extraction of the results.
loop <- function(fit_one) {
  theta <- beta <- NULL
  crit <- sigma <- numeric(m)
  msgs <- character(m)
  elapsed <- system.time(for (j in seq_len(m)) {
    f <- quiet(fit_one(j))
    if (is.null(theta)) {
      theta <- matrix(NA_real_, m, length(getME(f, "theta")))
      beta <- matrix(NA_real_, m, length(fixef(f)))
    }
    theta[j, ] <- getME(f, "theta")
    beta[j, ] <- fixef(f)
    crit[j] <- REMLcrit(f)
    sigma[j] <- sigma(f)
    msgs[j] <- paste(f@optinfo$conv$lme4$messages, collapse = "; ")
  })[["elapsed"]]
  list(seconds = elapsed, theta = theta, beta = beta, criterion = crit, sigma = sigma, messages = msgs)
}

# The template for refit() is lmer() on the first response, timed apart.
data$y <- Y[, 1]
template_seconds <- system.time(template <- quiet(lmer(form, data)))[["elapsed"]]
refit_loop <- loop(function(j) refit(template, Y[, j]))
lmer_loop <- loop(function(j) {
  data$y <- Y[, j]
  lmer(form, data)
})
write_json(list(template_seconds = template_seconds, refit = refit_loop, lmer = lmer_loop, responses = m,
                theta_names = names(getME(template, "theta")), fixef_names = names(fixef(template)),
                version = as.character(packageVersion("lme4"))),
           args[5], digits = NA, auto_unbox = TRUE)
