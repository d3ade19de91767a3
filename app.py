"""ViT Attention Explorer: the Streamlit entry point and the shared sidebar."""
from __future__ import annotations

import sys
from typing import Callable

import streamlit as st

st.set_page_config(page_title="ViT Attention Explorer", page_icon=":eye:", layout="wide")
# A chart of a fixed size wider than a narrow screen (a large model's layer x head
# heatmap, the layer-by-layer maps) scrolls within its box, as a table does, instead of
# being cut at the edge of the page.
st.html("<style>[data-testid='stElementContainer']:has([data-testid='stVegaLiteChart'])"
        "{overflow-x:auto}</style>")
# The first run after a server start imports PyTorch and timm (10 seconds or more on a
# small machine): say so at once instead of leaving the page blank.
starting = st.empty()
if "torch" not in sys.modules:
    starting.info("Loading the engine (PyTorch and timm), a few seconds "
                  "after a server start...", icon=":material/hourglass_top:")

from core.data.records import Dataset  # noqa: E402 (after the message)
from core.data.layout import IMAGE_SUFFIXES  # noqa: E402
from core.data.uploads import save_uploads  # noqa: E402
from core.model import LoadedModel  # noqa: E402
from ui import resources, upload_memory  # noqa: E402
from ui.plain import plain  # noqa: E402
from ui.downloads import file_name  # noqa: E402
from ui.pages import PAGES  # noqa: E402
from ui.report import image_report  # noqa: E402
from ui.state import bind, from_widget, select, selection, write_url  # noqa: E402

starting.empty()
upload_memory.bound_this_server()


# The page files are not in a folder named pages/: with one, Streamlit runs the first
# session of a fresh server as an old-style pages/ app, and a shared link such as
# /strength opens with a "Page not found" dialog. Their names differ from the URL paths
# (AppTest would otherwise run a page without this script).
def navigation_pages() -> list[st.Page]:
    """The table's pages; the default one at / and, hidden from the menu, at its own
    path too (Streamlit serves a default page at / only)."""
    pages = [st.Page(p.path, title=p.title, url_path="" if p.default else p.name,
                     default=p.default) for p in PAGES]
    return pages + [st.Page(p.path, title=p.title, url_path=p.name, visibility="hidden")
                    for p in PAGES if p.default]


SHOWN_SKIPPED = 100  # skipped files listed in the sidebar; the rest are counted
UPLOAD_TYPES = [suffix[1:] for suffix in IMAGE_SUFFIXES] + ["csv", "zip"]


def use_uploads() -> None:
    """on_change of the uploader: the uploaded files become the image set."""
    files = st.session_state.get("w_upload") or []
    if not files:
        return
    try:
        upload = save_uploads([(f.name, f.getvalue()) for f in files])
    except OSError as err:
        st.session_state["upload_error"] = (f"The uploaded files could not be stored "
                                            f"({err.strerror or type(err).__name__}); "
                                            "the image set is unchanged.")
        return
    upload_memory.release(files)  # stored on disk: the server's memory holds them no more
    separate = len(files) > 1 and not any(f.name.lower().endswith(".zip") for f in files)
    st.session_state["upload_report"] = (len(files), separate, upload)
    select(images=upload.images, image="")


def upload_report() -> None:
    """What the last upload of this session gave: files received and kept, and each
    file or archive entry left out with the reason (shown once, after the upload); for
    several separate files, that a browser may lose some (a .zip cannot)."""
    received, separate, upload = st.session_state.pop("upload_report")
    st.success(f"{received:,} file(s) received; {upload.files:,} kept as the image set."
               + (" If you picked more files, the browser could not send the rest: "
                  "upload them as one .zip." if separate else ""))
    if upload.refused:
        listed(f"{len(upload.refused)} file(s) left out of the upload", upload.refused)


def listed(title: str, files: list[tuple[str, str]]) -> None:
    """An expander listing ``(file, reason)`` pairs as plain text, the first
    SHOWN_SKIPPED of them, the rest counted."""
    with st.expander(title):
        for name, reason in files[:SHOWN_SKIPPED]:
            st.text(f"{name}: {reason}")
        if len(files) > SHOWN_SKIPPED:
            st.caption(f"... and {len(files) - SHOWN_SKIPPED} more.")


def reference_picker(lm: LoadedModel, ds: Dataset, ids: list[str],
                     describe: Callable[[str], str]) -> None:
    """For a model without classes: what it says, and the reference image every view
    measures the images on (SPEC "Models without class scores"), kept in the link."""
    st.info("No classes: explained by similarity to a reference embedding. Every score "
            "below is s = <e(x), r> / <r, r>, the image's embedding e(x) projected on the "
            "reference r (1 = as much as the reference itself).")
    sel = selection()
    if sel["reference"] and sel["reference"] not in ids:
        sel["reference"] = ""
    bind("w_reference", "reference")
    st.selectbox("Reference image", [""] + ids, key="w_reference",
                 format_func=lambda i: "each image itself" if not i else describe(i),
                 on_change=from_widget, args=("w_reference", "reference"),
                 help="Whose embedding r the scores, maps and importances are measured "
                      "on: each image's own (what in the image makes its embedding), or "
                      "one image's ('what makes this image look like that one').")
    if sel["reference"] and resources.chosen_target(lm, ds, None) is None:
        st.warning(plain(f"The reference image {sel['reference']} could not be used; "
                         "each image is measured on its own embedding."))


def sidebar() -> None:
    sel = selection()
    notice = st.empty()  # the top of the page: what the link asked for that is not there
    with st.sidebar:
        st.header("ViT Attention Explorer")
        with st.form("source"):
            model = st.text_input("Model", sel["model"],
                                  help="'demo', 'demo-watermark' (a demo with a known shortcut), "
                                       "a timm model name such as deit_tiny_patch16_224, or a "
                                       "Hugging Face ViT, DeiT or DINOv2: the path of its "
                                       "folder, or transformers:ORG/NAME")
            checkpoint = st.text_input("Checkpoint file (optional)", sel["checkpoint"],
                                       help="A local .safetensors, .pth or .bin for the model")
            images = st.text_input("Images", sel["images"],
                                   help="'demo', 'demo-watermark', or a folder (class "
                                        "subfolders, or flat with an optional labels.csv; "
                                        "object masks in masks/), or an uploaded set")
            if st.form_submit_button("Load"):
                sel.update(model=model.strip(), checkpoint=checkpoint.strip(),
                           images=images.strip(), image="")
        st.file_uploader("Or upload images", type=UPLOAD_TYPES, accept_multiple_files=True,
                         key="w_upload", on_change=use_uploads,
                         help="They become the image set, kept on this server so that a "
                              "link to it works. Add a labels.csv (filename,label) to give "
                              "their true classes. Many images? Upload one .zip (flat with "
                              "a labels.csv, or class folders): a browser sending hundreds "
                              "of separate files can lose some.")
        if "upload_report" in st.session_state:
            upload_report()
        if "upload_error" in st.session_state:
            st.error(plain(st.session_state.pop("upload_error")))
        try:
            lm, ds = resources.current()
        except resources.Unavailable as err:
            st.error(plain(err))
            return
        ids = [r.id for r in ds.records]
        if sel["image"] not in ids:
            if sel["image"]:  # "" (a new image set): its first image, nothing to say
                notice.warning(plain(f"This image set has no image {sel['image']!r}; showing "
                                     f"its first image, {ids[0]}."))
            sel["image"] = ids[0]
        sel["layer"] = min(max(int(sel["layer"]), 0), lm.num_layers - 1)
        sel["head"] = min(max(int(sel["head"]), 0), lm.num_heads - 1)
        for key, name in (("w_image", "image"), ("w_layer", "layer"), ("w_head", "head")):
            bind(key, name)

        def describe(image_id: str) -> str:
            record = ds.records[ds.index_of(image_id)]
            name = (lm.class_names[record.label] if record.label is not None and lm.has_classes
                    else record.group)
            return image_id if name is None else f"{image_id} ({name})"

        st.selectbox("Image", ids, key="w_image", format_func=describe,
                     on_change=from_widget, args=("w_image", "image"))
        if not lm.has_classes:
            reference_picker(lm, ds, ids, describe)
        st.slider("Layer (0 = first block)", 0, lm.num_layers - 1, key="w_layer",
                  on_change=from_widget, args=("w_layer", "layer"))
        st.slider("Head", 0, lm.num_heads - 1, key="w_head",
                  on_change=from_widget, args=("w_head", "head"))
        index, layer, head = ds.index_of(sel["image"]), int(sel["layer"]), int(sel["head"])
        st.download_button(
            "Report for this image (HTML)", icon=":material/download:", on_click="ignore",
            data=lambda: image_report(lm, ds, index, layer, head, resources.cache()),
            file_name=file_name(f"report_L{layer}H{head}", "html"),
            mime="text/html", help="One file with this image's predictions, head importance, "
            "strength, pattern and rollout views; opens in any browser without the app.")
        st.caption(f"{lm.name}: {lm.num_layers} layers x {lm.num_heads} heads, "
                   f"{lm.grid[0]}x{lm.grid[1]} patches of {lm.patch_size[0]} px, "
                   f"{lm.num_prefix_tokens} prefix token(s), on {lm.device}. "
                   f"{len(ds)} images.")
        if ds.skipped:
            listed(f"{len(ds.skipped)} file(s) skipped", ds.skipped)
        for note in ds.notes:
            st.info(plain(note))
        if resources.cache().warning:
            st.warning(plain(resources.cache().warning))
    write_url()


navigation = st.navigation(navigation_pages())
sidebar()
navigation.run()
