"""A one-file HTML report for one image: the report section of every page of the
table (``ui.pages``), in the table's order. Everything is embedded (PNG as base64),
so it opens in any browser without the app or a network. A section shows what its
page shows at once and, for what the page asks about first, what the cache holds."""
from __future__ import annotations

import html
from datetime import datetime, timezone

from core.data.inputs import load_batch
from core.data.records import Dataset
from core.model import LoadedModel
from core.storage.cache import ArrayCache
from ui.pages import PAGES, AppPage
from ui.report_html import Report, paragraph, section
from ui.views import enlarged

STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
h1{margin-bottom:0}section{margin:2em 0}img{max-width:100%}.row{display:flex;gap:1em;
flex-wrap:wrap}.row figure{margin:0;flex:1;min-width:200px}figcaption{color:#555;
font-size:.9em}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid
#ddd;text-align:left}.muted{color:#666}"""


def page_section(page: AppPage, report: Report) -> str:
    """Page `page`'s section of `report`; when making it fails, the section says so with
    the reason (one failing view does not take the report down, nor hide silently)."""
    try:
        return page.report(report)
    except Exception as err:  # noqa: BLE001 (any failure of a view is reported)
        return section(page.heading, "This section could not be made.",
                       paragraph(f"{type(err).__name__}: {err}"))


def image_report(lm: LoadedModel, ds: Dataset, index: int, layer: int, head: int,
                 cache: ArrayCache | None = None) -> str:
    """The HTML text of the report for image `index` and head (`layer`, `head`)."""
    record = ds.records[index]
    batch, _, failures = load_batch(lm, ds, [index])
    if batch is None:
        raise ValueError(f"Image {record.id}: {next(iter(failures.values()))}")
    report = Report(lm, ds, index, layer, head, cache, batch,
                    enlarged(lm.to_display(batch[0])))
    parts = [page_section(page, report) for page in PAGES if page.report is not None]
    true_name = None if record.label is None else lm.class_names[record.label]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Image {record.id}" + (f" ({true_name})" if true_name else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - "
            f"ViT Attention Explorer</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='muted'>Model {html.escape(lm.name)} "
            f"({lm.num_layers} layers x {lm.num_heads} heads), report made {stamp} by ViT "
            "Attention Explorer.</p>" + "".join(parts) + "</body></html>")
