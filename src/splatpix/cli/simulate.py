"""The ``splatpix simulate`` subcommand (wired into :mod:`splatpix.cli` by ``add_parsers``).

::

    splatpix simulate MODEL --scene SCENE.yaml -o OUT.mp4|OUT.gif|OUTDIR/ [overrides] [--quiet]
    splatpix simulate MODEL --material elastic|jelly|snow|sand|water [--region SPEC] -o OUT [overrides] [--quiet]

    overrides: [--frames N] [--fps F] [--grid-res R|auto] [--gravity G|GX,GY] [--background #rrggbb|IMAGE|original]
               [--size WxH]

A scene file (:mod:`splatpix.physics.scene`) assigns materials to regions and sets the solver; the shortcut
``--material`` simulates one preset material on ``--region`` (default ``all``; normalised coordinates as in
``splatpix edit``). ``--gravity G`` pulls down the image with ``G`` m/s^2 (``GX,GY``: a vector in the
simulation frame, y up). Gaussians outside every region stay in place. The model kind (GaussianImage or GaINeR)
is read from the file. Errors are :class:`~splatpix.errors.SplatpixError`; outputs are written atomically and never
over an input.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import SplatpixError
from .common import check_outputs, full_size, plain

__all__ = ["add_parsers", "cmd_simulate"]

MATERIALS = ("elastic", "jelly", "snow", "sand", "water")


def _gravity(text: str) -> tuple[float, float]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected G or GX,GY (m/s^2), got {text!r}") from None
    if len(vals) == 1:
        return 0.0, -vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise argparse.ArgumentTypeError(f"expected G or GX,GY (m/s^2), got {text!r}")


def _grid_res(text: str) -> int | str:
    if text.strip() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or auto, got {text!r}") from None


def _overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    top = {k: getattr(args, k) for k in ("frames", "fps", "background") if getattr(args, k) is not None}
    bg = top.get("background")
    if isinstance(bg, str) and bg.strip() and bg.strip() != "original" and not bg.strip().startswith("#"):
        top["background"] = os.path.abspath(bg.strip())  # relative to the working directory, not the scene
    if args.size is not None:
        top["size"] = [args.size[1], args.size[0]]  # the scene's [width, height]
    sim: dict[str, Any] = {}
    if args.grid_res is not None:
        sim["grid_res"] = args.grid_res
    if args.gravity is not None:
        sim["gravity"] = list(args.gravity)
    return top, sim


def _scene(args: argparse.Namespace) -> Any:
    from ..physics.scene import load_scene, parse_scene, single_material_scene

    top, sim = _overrides(args)
    if args.scene is not None:
        if args.material is not None or args.region is not None:
            extra = "--material" if args.material is not None else "--region"
            raise SplatpixError(f"{extra} cannot be combined with --scene (put the materials in the scene)")
        scene = load_scene(args.scene)
        if not top and not sim:
            return scene
        # apply the overrides by re-validating the overridden fields the same way as in a file
        probe = parse_scene({**top, "materials": [{"preset": "elastic", "region": "all"}], "simulation": sim},
                            scene.base_dir)
        for k in top:
            setattr(scene, k, getattr(probe, k))
        for k in sim:
            setattr(scene.simulation, k, getattr(probe.simulation, k))
        scene.inputs = [*scene.inputs, *probe.inputs]
        return scene
    if args.material is None:
        raise SplatpixError("give a scene (--scene SCENE.yaml) or a material (--material "
                            f"{'|'.join(MATERIALS)} [--region SPEC])")
    return single_material_scene(args.material, args.region or "all", simulation=sim or None, **top)


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..edit.writers import output_kind
    from ..physics.simulate import simulate
    from .edit import load_any_model

    inputs: list[str | None] = [args.model, args.scene]
    if args.region and args.region.strip().startswith("mask:"):
        inputs.append(args.region.strip()[5:].strip())
    if args.background and args.background.strip() not in ("original",) and not args.background.startswith("#"):
        inputs.append(args.background.strip())
    check_outputs([args.output], inputs)
    output_kind(args.output)
    scene = _scene(args)
    check_outputs([args.output], [*inputs, *scene.inputs])
    model = load_any_model(args.model)
    report = simulate(model, scene, args.output, progress=not args.quiet)
    print(f"{args.model}: {report['particles']} of {report['particles'] + report['static']} Gaussians simulated, "
          f"{report['frames']} frames {report['width']}x{report['height']} at {report['fps']:g} fps "
          f"({report['substeps']} substeps, grid {report['grid'][0]}x{report['grid'][1]}) in "
          f"{report['seconds']:.1f} s -> {args.output}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``simulate`` to an ``argparse`` subparsers object; it sets ``func`` to its handler."""
    p = sub.add_parser("simulate", help="simulate a model as elastic/jelly/snow/sand/water and render a video",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model file (.safetensors; Gaussian or GaINeR)")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT.gif or a folder OUTDIR/ of PNG frames")
    p.add_argument("--scene", help="scene file (YAML or JSON): materials, regions, solver settings")
    p.add_argument("--material", choices=MATERIALS, help="shortcut: simulate one preset material (no --scene)")
    p.add_argument("--region", help="with --material: all (default) | box:u0,v0,u1,v1 | polygon:u,v;u,v;u,v | "
                                    "ellipse:u,v,ru,rv | mask:PATH.png (normalised coordinates)")
    p.add_argument("--frames", type=int, help="number of frames, the initial state included (default 48)")
    p.add_argument("--fps", type=float, help="frames per second (default 24; one frame = 1/fps simulated s)")
    p.add_argument("--grid-res", dest="grid_res", type=_grid_res,
                   help="grid cells across the image's longer side, or auto (default)")
    p.add_argument("--gravity", type=_gravity, help="G (m/s^2 down the image; default 9.81) or GX,GY (y up)")
    p.add_argument("--background", help="#rrggbb (default #000000), an image path, or original")
    p.add_argument("--size", type=full_size, help="output size WxH (default: the model's native size)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)
