"""Sphinx configuration for the equinet documentation."""
import equinet

project = "equinet"
author = "equinet developers"
copyright = "2026, the equinet developers"
release = equinet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autosummary_generate = False
html_theme = "furo"
html_title = "equinet"
exclude_patterns = ["_build"]
nitpicky = False
