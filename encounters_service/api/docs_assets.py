"""The API docs pages, with no network but the service itself: Swagger UI at /schema and
/schema/swagger, its script, style sheet and icon served by the service from the Python package
swagger-ui-bundle-v2 (Litestar's plugin would load them from a CDN: a white page offline). The
document itself stays at /schema/openapi.json and /schema/openapi.yaml (and .yml).

ReDoc, Stoplight Elements and RapiDoc are not offered: Litestar loads them from CDNs too, and the
packages that ship their files bring a whole web framework along (Flask, FastAPI or Django).
"""

from __future__ import annotations

from litestar import MediaType, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.params import FromPath
from litestar.response import File
from swagger_ui_bundle import swagger_ui_path

from encounters_service.errors import error_response

# The files the page loads, and their media types. The folder's name carries Swagger UI's version
# (swagger-ui-5.31.0), and so do the URLs: a browser may keep them for a year.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_ONE_YEAR = CacheControlHeader(max_age=365 * 24 * 3600, public=True)


@get(f"/{swagger_ui_path.name}/{{name:str}}", include_in_schema=False, cache_control=_ONE_YEAR, sync_to_thread=False)
def swagger_ui_asset(name: FromPath[str]) -> File:
    if name not in ASSETS:
        raise NotFoundException()
    return File(swagger_ui_path / name, media_type=ASSETS[name], content_disposition_type="inline")


async def _plain_not_found(response: Response) -> Response:
    """The docs router answers a path it does not know (e.g. /schema/redoc) with an HTML page of
    its own; it gets the `{"message"}` of every other 404 instead."""
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        return error_response(404, "Not Found")
    return response


class LocalSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI whose assets are served beside the page, under the docs router's path."""

    def __init__(self) -> None:
        super().__init__(path=["/swagger", "/"])

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)  # Swagger UI's oauth2-redirect.html
        router.register(swagger_ui_asset)
        router.after_request = _plain_not_found
        assets = f"{router.path}/{swagger_ui_path.name}"
        self.js_url = f"{assets}/swagger-ui-bundle.js"
        self.standalone_preset_js_url = f"{assets}/swagger-ui-standalone-preset.js"
        self.css_url = f"{assets}/swagger-ui.css"
        self.favicon = f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """For OpenAPIConfig(render_plugins=...): a new set for each app (the Swagger plugin learns
    its router's path)."""
    return [LocalSwaggerRenderPlugin(), JsonRenderPlugin(), YamlRenderPlugin()]
