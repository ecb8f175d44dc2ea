"""Sphinx configuration of lmm's documentation (built by ``.ci/docs.sh``).

The pages are Markdown (MyST); the API reference comes from the docstrings, so ``lmm``
must be importable (installed, or ``PYTHONPATH=python`` with the compiled extension in
place): the configuration adds no path of its own, which would shadow an installed build.
"""

import lmm

project = "lmm"
author = "the lmm authors"
copyright = "the lmm authors"  # noqa: A001 - Sphinx's name
release = version = lmm.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

# napoleon reads the Google-style docstrings (Args/Returns/Raises), and datasets'
# NumPy-style ones. Class "Attributes:" sections as fields of the class, not as attribute entries that
# would duplicate the properties autodoc documents from their own docstrings.
napoleon_use_ivar = True
# "Returns: type: description" keeps the type beside its description.
napoleon_use_rtype = False

# Unresolvable references are errors too, except names of code: the pages are built
# offline (no intersphinx inventories for numpy, pandas, scipy), and private modules of
# lmm are not in the reference. What remains is prose read as a type, e.g. a property
# whose summary "Names of θ: ..." napoleon takes for Google's "type: description".
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"[A-Za-z_][A-Za-z0-9_.]*")]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

# The benchmark figure is drawn at build time by benchmarks/plot_fit_times.py from the
# committed table of times (plot directive, docs/benchmarks.md): one SVG, no source links.
plot_formats = ["svg"]
plot_html_show_formats = False
plot_html_show_source_link = False

html_theme = "furo"
html_title = f"lmm {release}"
