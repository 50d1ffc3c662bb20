"""``splatpix view``: a viewer and editor of Gaussian images in the browser (docs/viewer.md).

* :mod:`.source`: the file being viewed (``.spix``, GaussianImage model, GaINeR field), validated, and the saving of
  edited models and PNGs;
* :mod:`.server`: the local HTTP server (127.0.0.1 only, standard library);
* :mod:`.arrays`: the binary message of a model's arrays between the server and the page;
* :mod:`.export`: ``--export``, one self-contained HTML file;
* ``static/``: the page (WebGL2 renderer ``gl.js``, edits ``edit.js``, UI ``app.js``; ``spix/`` the ``.spix``
  decoder in JavaScript).
"""

from .export import export_html
from .server import ViewerServer, static_dir
from .source import Source

__all__ = ["Source", "ViewerServer", "export_html", "static_dir"]
