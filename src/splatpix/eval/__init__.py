"""Rate–distortion evaluation: BD-rate / BD-PSNR, CompressAI-format RD curves, RD plots.

Submodules (import them directly; none is imported here, so that ``import splatpix.eval`` stays light and
never pulls in matplotlib, scipy or ``bjontegaard``):

- :mod:`splatpix.eval.bdrate`: :func:`~splatpix.eval.bdrate.bd_rate`, :func:`~splatpix.eval.bdrate.bd_psnr`
  (``bjontegaard`` package, Akima interpolation by default) and the numpy cross-check
  :func:`~splatpix.eval.bdrate.bd_rate_cubic_poly`.
- :mod:`splatpix.eval.rd`: :class:`~splatpix.eval.rd.RDCurve`, :func:`~splatpix.eval.rd.load_curve`,
  :func:`~splatpix.eval.rd.save_curve`, :func:`~splatpix.eval.rd.mean_curve`,
  :func:`~splatpix.eval.rd.load_published`.
- :mod:`splatpix.eval.plots`: :func:`~splatpix.eval.plots.plot_rd` (matplotlib, Agg canvas).

The optional dependencies are installed with ``pip install splatpix[eval]``.
"""
