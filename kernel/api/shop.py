"""The example storefront's static files, served by ``niaga serve --storefront`` at ``/shop/``.

Imported only when the flag is given (``kernel.cli``), never by the Lambda API: there the
storefront belongs on a CDN in front of the API, not in the function. The routes stay out
of the OpenAPI document, which describes the API alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File, Redirect
from litestar.static_files import create_static_files_router

MOUNT = "/shop"
INDEX = "index.html"


class StorefrontNotFound(Exception):
    """No storefront directory (with an index.html) where one was asked for."""


def default_dir() -> Path | None:
    """``examples/storefront`` of the source checkout (the project is installed editable),
    else of the current directory; None when neither has one."""
    here = Path(__file__).resolve().parents[2] / "examples" / "storefront"
    for candidate in (here, Path.cwd() / "examples" / "storefront"):
        if (candidate / INDEX).is_file():
            return candidate
    return None


def resolve_dir(value: str | None) -> Path:
    """The directory to serve: ``value``, or :func:`default_dir` when it is empty/None."""
    if not value:
        found = default_dir()
        if found is None:
            raise StorefrontNotFound(
                "no examples/storefront/index.html next to the installed kernel or in the "
                f"current directory ({Path.cwd()}); name the directory: --storefront DIR")
        return found
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise StorefrontNotFound(f"{path} is not a directory")
    if not (path / INDEX).is_file():
        raise StorefrontNotFound(f"{path} has no {INDEX}")
    return path


def storefront_routes(directory: Path, *, redirect_root: bool = True) -> list[Any]:
    """Route handlers serving ``directory`` at ``/shop/`` (and ``/`` → ``/shop/``).

    ``/shop`` without the slash is redirected to ``/shop/`` so the page's relative URLs
    (``app.js``, ``style.css``) resolve under the mount. ``Cache-Control: no-cache``: the
    browser revalidates, so an edited file shows on the next reload.
    """
    directory = directory.resolve()
    index = directory / INDEX

    @get(MOUNT, include_in_schema=False, name="storefront/index", sync_to_thread=False)
    def shop_index(request: Request) -> File | Redirect:
        # the router matches /shop and /shop/ alike; raw_path is what the client asked for
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        if not raw.split(b"?", 1)[0].endswith(b"/"):
            query = request.scope.get("query_string", b"").decode("latin-1")
            return Redirect(f"{MOUNT}/" + (f"?{query}" if query else ""), status_code=308)
        return File(index, content_disposition_type="inline", media_type="text/html",
                    headers={"Cache-Control": "no-cache"})

    files = create_static_files_router(
        path=MOUNT, directories=[directory], name="storefront", include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True))
    handlers: list[Any] = [shop_index, files]
    if redirect_root:
        @get("/", include_in_schema=False, name="storefront/root", sync_to_thread=False)
        def root() -> Redirect:
            return Redirect(f"{MOUNT}/", status_code=307)

        handlers.append(root)
    return handlers
