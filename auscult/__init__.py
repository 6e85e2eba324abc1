"""auscult: respiratory-sound screening, from recordings to a served and monitored model.

The core library. Every lifecycle stage is a plain typed function in ``auscult.stages``; nothing here
imports kfp, so the same logic runs in a KFP component, a notebook or a test.
"""

__version__ = "0.1.0"
