"""Editing and animation of Gaussian images (both model kinds: :class:`~splatpix.model.gaussians.Gaussians` and
:class:`~splatpix.gainer.field.GainerField`).

Submodules, one job each (their docstrings hold the maths):

- :mod:`.deform`: deformations of the plane in native pixels (translate, rotate, scale, stretch, bend, twist,
  wave, displacement fields, control lattices, cut, region blends, compositions), inverses, autograd Jacobians;
- :mod:`.region`: selections (all, box, polygon, ellipse, mask image, predicate on Gaussians) with a feather;
- :mod:`.apply`: :func:`apply_edit`: means through the map, covariances pushed forward ``J Sigma J^T``;
- :mod:`.composite`: rendering an edited model (or its selected Gaussians) over a background, with coverage;
- :mod:`.ops`, :mod:`.spec`: named operations in resolution-independent units, YAML/JSON edit and keyframe specs;
- :mod:`.animate`, :mod:`.writers`: frame-by-frame animation to PNG frames, GIF or MP4.

Example::

    from . import Rotate, apply_edit, composite, gaussian_selection, parse_region
    region = parse_region("ellipse:0.4,0.5,0.2,0.25", feather=6)
    h, w = g.size
    edited = apply_edit(g, Rotate(20, (0.4 * w, 0.5 * h)), region)
    img = composite(edited, original_image)
"""

from .animate import animate, render_at
from .apply import EditStep, apply_edit, edit_points, gaussian_geometry, gaussian_selection, model_kind
from .composite import colour_and_alpha, composite, parse_colour, render_model, resolve_background
from .deform import (
    Bend,
    Blend,
    Compose,
    Cut,
    Deformation,
    DisplacementField,
    Lattice,
    NewtonInverse,
    Rotate,
    Scale,
    Stretch,
    Translate,
    Twist,
    Wave,
    direction,
    jacobian,
    map_and_jacobian,
)
from .ops import OPS, DeformationFactory
from .region import (
    AllRegion,
    BoxRegion,
    EllipseRegion,
    MaskRegion,
    PolygonRegion,
    PredicateRegion,
    Region,
    ellipse_region,
    parse_region,
)
from .spec import EditSpec, load_spec, parse_spec
from .writers import open_writer

__all__ = [
    "OPS",
    "AllRegion",
    "Bend",
    "Blend",
    "BoxRegion",
    "Compose",
    "Cut",
    "Deformation",
    "DeformationFactory",
    "DisplacementField",
    "EditSpec",
    "EditStep",
    "EllipseRegion",
    "Lattice",
    "MaskRegion",
    "NewtonInverse",
    "PolygonRegion",
    "PredicateRegion",
    "Region",
    "Rotate",
    "Scale",
    "Stretch",
    "Translate",
    "Twist",
    "Wave",
    "animate",
    "apply_edit",
    "colour_and_alpha",
    "composite",
    "direction",
    "edit_points",
    "ellipse_region",
    "gaussian_geometry",
    "gaussian_selection",
    "jacobian",
    "load_spec",
    "map_and_jacobian",
    "model_kind",
    "open_writer",
    "parse_colour",
    "parse_region",
    "parse_spec",
    "render_at",
    "render_model",
    "resolve_background",
]
