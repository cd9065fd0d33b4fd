"""The model card: a night's report flattened into labelled rows and charts for about.html.

Every part of the report is optional (a night without training, a render without any
report): absent keys are skipped rather than shown empty.
"""

from __future__ import annotations

from .charts import loss_curve_svg, rejection_chart_svg, trend_svg
from .site_model import Night, finite_number, fmt_number


def model_card(report: dict, night: Night, nights: list[Night] = ()) -> dict:
    """The report, flattened into labelled rows for the template; absent keys are skipped.

    ``nights``: the archived nights up to this one, for the quality trend.
    """
    def section(data, fields):
        rows = []
        for key, label in fields:
            value = (data or {}).get(key)
            if value is None or value == "" or value == []:
                continue
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            rows.append((label, fmt_number(value) if not isinstance(value, str) else value))
        return rows

    report = report if isinstance(report, dict) else {}
    get = lambda key: report.get(key) if isinstance(report.get(key), dict) else {}  # noqa: E731
    catalog, model, train, generate, curate = (get(k) for k in ("catalog", "model", "train", "generate", "curate"))
    catalog_rows = section(catalog, [("source", "Source"), ("rows", "Rows read"), ("kept", "Descriptions used"),
                                     ("train_count", "Training"), ("val_count", "Validation"),
                                     ("catalog_hash", "Content hash (SHA-256)"), ("changed", "Changed since last night")])
    model_rows = section({**model, "profile": report.get("profile")},
                         [("name", "Base model"), ("source", "Source"), ("profile", "Profile"),
                          ("live_release", "Live release"), ("live_step", "Live checkpoint step")])
    train_rows = []
    if train.get("skipped"):
        train_rows.append(("This night", f"no training ({train.get('reason') or 'skipped'})"))
    elif train.get("reason"):
        train_rows.append(("Decision", str(train["reason"])))
    train_rows += section(train, [("steps", "Steps this night"), ("total_steps", "Total steps"),
                                  ("train_loss", "Training loss"), ("val_loss", "Validation loss"),
                                  ("live_val_loss", "Previous live validation loss"), ("promoted", "Promoted")])
    generate_rows = section(generate, [("samples", "Samples generated"), ("terminated", "Finished (end token)"),
                                       ("length", "Max new tokens"), ("temperature", "Temperature"),
                                       ("top_k", "Top-k"), ("top_p", "Top-p"), ("seed", "Seed"),
                                       ("backend", "Sampler"), ("conditions", "Conditions")])
    kept = curate.get("kept")
    if finite_number(kept) is None:
        kept = len(night.items)  # what the gallery itself shows
    curate_rows = section({**curate, "kept": kept}, [("input", "Samples checked"), ("kept", "Kept")])
    if finite_number(curate.get("kept_rate")) is not None:
        curate_rows.append(("Kept rate", f"{curate['kept_rate']:.1%}"))
    reader = curate.get("reader") if isinstance(curate.get("reader"), dict) else {}
    curate_rows += section(reader, [("model", "Reader"), ("cut", "Reader's cut (SLOR)"),
                                    ("held_out", "Real held-out descriptions it was set on"),
                                    ("held_out_median", "Their median SLOR"), ("read", "Candidates read tonight"),
                                    ("unread", "Left unread (budget)"), ("tokens_per_second", "Reading, tokens/s")])
    rejected = curate.get("rejected") if isinstance(curate.get("rejected"), dict) else {}
    rounds_rows = section(generate, [("target_kept", "Descriptions wanted"), ("rounds", "Rounds"), ("stop", "Stopped")])
    return {
        "catalog": catalog_rows, "model": model_rows, "train": train_rows, "generate": generate_rows,
        "curate": rounds_rows + curate_rows,
        "quality": quality_rows(get("quality")),
        "quality_note": reader_note(get("quality")),
        "quality_svg": quality_trend(nights),
        "reader_svg": reader_trend(nights),
        "rejected": sorted(((str(k), v) for k, v in rejected.items() if finite_number(v) is not None), key=lambda kv: (-kv[1], kv[0])),
        "loss_svg": loss_curve_svg(train.get("loss_curve")),
        "rejection_svg": rejection_chart_svg(rejected, kept) if rejected else None,
        "has_report": bool(report),
        "base_model": model.get("name") if isinstance(model.get("name"), str) else None,
    }


def quality_rows(panel: dict) -> list[tuple[str, str]]:
    """The night's quality panel (generator/quality.py) as labelled rows."""
    def number(*path):
        value = panel
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return finite_number(value)

    rows = []
    for label, path, shown in [
        ("Invented words, generated", ("invented_rate", "before"), "{:.1%}"),
        ("Invented words, published", ("invented_rate", "after"), "{:.1%}"),
        ("Distinct word pairs (distinct-2)", ("distinct_2",), "{:.3f}"),
        ("Longest run shared with the catalog (median words)", ("novelty", "longest_shared_run_median"), "{:g}"),
        ("Longest run shared with the catalog (max words)", ("novelty", "longest_shared_run_max"), "{:g}"),
        ("Reader: SLOR, published (median)", ("reader", "published_median"), "{:.2f}"),
        ("Reader: SLOR, real held-out descriptions (median)", ("reader", "real_median"), "{:.2f}"),
        ("Reader: SLOR, tonight's candidates (median)", ("reader", "candidates_median"), "{:.2f}"),
        ("Reader: published within real text's 90 %", ("reader", "published_within_real_90"), "{:.0%}"),
        ("Reader: AUC, real vs published (0.5 = indistinguishable)", ("reader", "auc"), "{:.2f}"),
        ("Realism: classifier accuracy, published vs real (0.5 = indistinguishable)", ("realism", "accuracy"),
         "{:.2f}"),
        ("Titles, published", ("titles", "titled"), "{:,.0f}"),
        ("Titles: distinct share (case and punctuation ignored)", ("titles", "distinct_share"), "{:.1%}"),
        ("Titles copying a catalog title, rejected", ("titles", "copies_rejected"), "{:,.0f}"),
        ("Titles with an invented word, rejected", ("titles", "invented_rejected"), "{:,.0f}"),
    ]:
        value = number(*path)
        if value is not None:
            rows.append((label, shown.format(value)))
    return rows


def reader_note(panel: dict) -> str | None:
    """The caveat beside the reader's figures (the generator shares the reader's base model), if any."""
    reader = panel.get("reader") if isinstance(panel, dict) else None
    note = reader.get("note") if isinstance(reader, dict) else None
    return note if isinstance(note, str) and note else None


def night_trend(nights, path: tuple[str, str], chart_id: str, title: str, y_name: str) -> object:
    """One quality figure (``panel[path[0]][path[1]]``) of each night up to this one; None under two nights."""
    dated = [n for n in nights if n.date != "undated"]
    points = []
    for index, night in enumerate(dated):
        panel = (night.report or {}).get("quality") if isinstance(night.report, dict) else None
        section = panel.get(path[0]) if isinstance(panel, dict) else None
        value = finite_number(section.get(path[1])) if isinstance(section, dict) else None
        if value is not None:
            points.append([index, value])
    return trend_svg(points, [n.date for n in dated], title, y_name, chart_id=chart_id)


def quality_trend(nights) -> object:
    """The realism accuracy of each night up to this one, as a small line chart (None under two nights)."""
    return night_trend(nights, ("realism", "accuracy"), "trend", "Realism by night: classifier accuracy "
                       "(lower is better)", "accuracy")


def reader_trend(nights) -> object:
    """The reader's AUC, real against published, of each night up to this one (None under two nights)."""
    return night_trend(nights, ("reader", "auc"), "reader-trend", "The reader by night: AUC, real vs published "
                       "(0.5 = it cannot tell them apart)", "AUC")
