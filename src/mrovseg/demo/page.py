"""The Gradio page of :mod:`mrovseg.demo` (install with ``pip install "mrovseg[demo]"``).

Layout: left, the image (upload, clipboard or an example), the benchmark-vocabulary dropdown, the
vocabulary box and the Segment button; right, the overlay with its legend panel, the opacity slider,
the legend, the table of classes present, the timing, a status line and the downloads (label PNG and
JSON as ``predict`` writes them).

Events (also the HTTP API of ``gradio_client``): ``/segment`` (image, vocabulary text, opacity →
overlay, legend HTML, table, timing, status, files), ``/reblend`` (opacity → overlay, no model call),
``/benchmark`` (name → the vocabulary box's text). Errors are raised as ``gr.Error`` with a sentence;
Gradio shows it on the page and keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrovseg.demo.session import (
    BENCHMARK_VOCABULARIES,
    DemoInputError,
    DemoSession,
    benchmark_names,
    reblend,
    without_paths,
)

log = logging.getLogger(__name__)

TABLE_HEADERS = ["class", "area share (%)", "mean score"]


def import_gradio() -> Any:
    """Gradio with its telemetry off, or an error that says how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(
            'The demo needs Gradio: pip install -e ".[demo]" (or pip install "mrovseg[demo]"), or run make demo.'
        ) from err
    return gr


def build_app(
    session: DemoSession,
    examples: Sequence[str],
    vocabulary: str = "toy",
    alpha: float = 0.5,
    cache_minutes: float | None = None,
) -> Any:
    """The ``gr.Blocks`` page around a :class:`DemoSession`.

    Args:
        session: Segmenter, limits, output folder.
        examples: Image files offered as examples.
        vocabulary: A benchmark vocabulary name whose names fill the vocabulary box at start.
        alpha: Initial opacity of the class colours.
        cache_minutes: Gradio deletes the files it keeps for the page (shown overlays, downloads) once
            they are this old, checking as often; None: never. Uploads go as soon as they are used.
    """
    gr = import_gradio()

    def segment(image: str | None, text: str, opacity: float, progress: Any = None) -> tuple:
        try:
            out = session.segment(image, text, opacity)
        except DemoInputError as err:
            raise gr.Error(str(err), print_exception=False) from err
        except Exception as err:  # anything else: a sentence on the page, the trace in the server log
            log.exception("segmentation failed")
            reason = without_paths(f"{type(err).__name__}: {err}")
            raise gr.Error(f"Segmentation failed ({reason}).", print_exception=False) from err
        finally:
            discard_upload(image_in, image)
        for notice in out.notices:
            gr.Warning(notice)
        h, w = out.result.image_size
        status = " ".join(
            [*out.notices, f"Segmented a {w}×{h} image with {len(out.result.class_names)} classes."]
        )
        return (
            out.overlay,
            out.legend_html(),
            out.table(),
            out.timing_text(),
            status,
            out.files,
            out.result,
        )

    def segment_tracked(image: str | None, text: str, opacity: float, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        return segment(image, text, opacity, progress)

    def blend(result: Any, opacity: float) -> Any:
        if result is None:
            return gr.skip()
        return reblend(result, opacity)

    def fill(name: str | None) -> Any:
        if not name:
            return gr.skip()
        try:
            return benchmark_names(name)
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from err

    seconds = None if cache_minutes is None else max(1, round(60 * float(cache_minutes)))
    with gr.Blocks(
        analytics_enabled=False,
        title="mrovseg — open-vocabulary segmentation",
        delete_cache=None if seconds is None else (seconds, seconds),
    ) as app:
        gr.Markdown(
            "## mrovseg — segment any image with your own words\n"
            "Upload an image or pick an example, type one class per line (synonyms after commas, "
            "e.g. `sofa, couch`) or pick a benchmark vocabulary, then press **Segment**."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image_in = gr.Image(
                    type="filepath", label="Image", sources=["upload", "clipboard"], elem_id="input-image"
                )
                _words_for_unreadable_files(gr, image_in)
                gr.Examples(examples=[[p] for p in examples], inputs=[image_in], label="Examples")
                bench = gr.Dropdown(
                    choices=list(BENCHMARK_VOCABULARIES),
                    value=None,
                    label="Benchmark vocabulary (fills the box below)",
                    elem_id="benchmark",
                )
                words = gr.Textbox(
                    value=benchmark_names(vocabulary),
                    lines=8,
                    max_lines=16,
                    label="Vocabulary: one class per line, synonyms after commas",
                    elem_id="vocabulary",
                )
                button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column(scale=2):
                overlay = gr.Image(
                    type="numpy", format="png", label="Overlay", interactive=False, elem_id="overlay"
                )
                opacity = gr.Slider(0.0, 1.0, value=alpha, step=0.05, label="Opacity", elem_id="opacity")
                legend = gr.HTML(label="Legend", elem_id="legend")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS, label="Classes present", interactive=False, elem_id="classes"
                )
                timing = gr.Textbox(label="Timing", interactive=False, elem_id="timing")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                files = gr.File(
                    file_count="multiple",
                    label="Downloads: label PNG, JSON",
                    interactive=False,
                    elem_id="files",
                )
        button.click(
            segment_tracked,
            inputs=[image_in, words, opacity],
            outputs=[overlay, legend, table, timing, status, files, state],
            api_name="segment",
        )
        opacity.release(blend, inputs=[state, opacity], outputs=[overlay], api_name="reblend")
        bench.change(fill, inputs=[bench], outputs=[words], api_name="benchmark")
    app.queue(default_concurrency_limit=1)
    return app


def _words_for_unreadable_files(gr: Any, image: Any) -> None:
    """Makes the image input's decoding failure (a file that is not an image) a sentence on the page,
    without the server's paths, and deletes the upload then (or when Gradio converted it to a copy).

    ``gr.Image`` opens uploads with Pillow before any event function runs; its error would otherwise
    reach the page as a bare "Error".
    """
    inner = image.preprocess

    def preprocess(payload: Any) -> Any:
        uploaded = getattr(payload, "path", None)
        try:
            value = inner(payload)
        except gr.Error:
            discard_upload(image, uploaded)
            raise
        except Exception as err:
            discard_upload(image, uploaded)
            name = Path(getattr(payload, "orig_name", None) or "").name or "The uploaded file"
            reason = without_paths(str(err))
            raise gr.Error(
                f"{name} is not an image this demo can read ({reason}).", print_exception=False
            ) from err
        if uploaded and value != uploaded:  # Gradio converted it (e.g. RGBA → RGB): its copy is used
            discard_upload(image, uploaded)
        return value

    image.preprocess = preprocess


def discard_upload(component: Any, path: str | None) -> None:
    """Deletes a file Gradio keeps for one request (an upload, or its converted copy) once it is used,
    with its folder when that is left empty. Only files inside Gradio's cache folder, and never one the
    page keeps there (an example's, a default value's: ``keep_in_cache``)."""
    if not path:
        return
    try:
        file = Path(path).resolve()
        kept = {Path(p).resolve() for p in getattr(component, "keep_in_cache", ())}
        if file in kept or not file.is_relative_to(Path(component.GRADIO_CACHE).resolve()):
            return
        file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            file.parent.rmdir()  # Gradio's one-upload folder; kept if anything else is in it
    except OSError as err:
        log.warning("could not delete the upload %s: %s", path, err)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_app(
    app: Any,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    share: bool = False,
    block: bool = True,
    max_file_size: str | int | None = None,
):
    """Serves the page; ``block=False`` returns at once (tests). Returns ``(app, local_url, share_url)``.

    ``max_file_size``: the largest upload (bytes, or ``"20mb"``); Gradio refuses larger ones with a message.
    """
    gr = import_gradio()
    return app.launch(
        server_name=host,
        server_port=int(port) if port else None,
        share=share,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        show_error=False,
        quiet=not block,
        ssr_mode=False,
        mcp_server=False,
        footer_links=["api"],
        theme=gr.themes.Default(),
    )
