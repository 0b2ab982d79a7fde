"""Error analysis of a segmentation model on its benchmarks (``python -m mrovseg.analyze``, or
``python -m mrovseg.eval eval.analysis=true``): ``analysis/<benchmark>/report.md`` with PNG figures.

``collect`` folds each test image into confusion matrices during the one evaluation path; ``components``
finds objects and segments (connected components); ``size`` bins objects by area; ``oracle`` builds the
masks-or-recognition oracle maps; ``tables`` turns the matrices into numbers; ``figures`` and ``report``
write the results; ``run`` is what the evaluation entry point calls. The rules: ``docs/error-analysis.md``.
"""
