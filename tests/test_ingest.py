import json

import pytest

from generator.textformat import END_TOKEN, START_TOKEN, control_prefix, split_control
from generator.errors import UserError
from generator.ingest import IngestSettings, ingest, is_validation, load_catalog

from conftest import assert_clean_error, run_cli, shared_csv

HEADER = "show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description\n"


def write(tmp_path, text, name="catalog.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def row(n, description, kind="Movie", genres="Dramas, Comedies"):
    return f's{n},{kind},Title {n},,,,"May 1, 2020",2020,TV-MA,90 min,"{genres}","{description}"\n'


def test_wraps_each_description_with_markers_and_control_prefix(tmp_path):
    csv_path = write(tmp_path, HEADER + row(1, "A  chef\tmoves to Paris and  opens a tiny bakery.")
                     + row(2, "Two rivals share a flat.", kind="TV Show", genres="TV Comedies"))
    manifest = ingest(str(csv_path), tmp_path / "out", IngestSettings(validation_fraction=0.0))
    lines = (tmp_path / "out" / "train.txt").read_text().splitlines()
    assert lines == [
        f"{START_TOKEN} [Movie] [Dramas] Title 1 | A chef moves to Paris and opens a tiny bakery.{END_TOKEN}",
        f"{START_TOKEN} [TV Show] [TV Comedies] Title 2 | Two rivals share a flat.{END_TOKEN}",
    ]
    assert manifest["kept"] == 2 and manifest["max_words"] == 10 and manifest["titles"] is True
    assert (tmp_path / "out.manifest.json").is_file()
    assert (tmp_path / "out" / "source.csv").read_bytes() == csv_path.read_bytes()


def test_unconditional_text_has_no_prefix(tmp_path):
    csv_path = write(tmp_path, HEADER + row(1, "A chef moves to Paris."))
    ingest(str(csv_path), tmp_path / "out", IngestSettings(validation_fraction=0.0, conditional=False))
    assert (tmp_path / "out" / "train.txt").read_text() == f"{START_TOKEN}Title 1 | A chef moves to Paris.{END_TOKEN}\n"
    ingest(str(csv_path), tmp_path / "plain", IngestSettings(validation_fraction=0.0, conditional=False, titles=False))
    assert (tmp_path / "plain" / "train.txt").read_text() == f"{START_TOKEN}A chef moves to Paris.{END_TOKEN}\n"


def test_titles_off_keeps_the_description_only_text_and_its_hash(tmp_path):
    csv_path = write(tmp_path, HEADER + row(1, "A chef moves to Paris.") + row(2, "Two rivals share a flat."))
    untitled = ingest(str(csv_path), tmp_path / "plain", IngestSettings(validation_fraction=0.0, titles=False))
    assert (tmp_path / "plain" / "train.txt").read_text() == (
        f"{START_TOKEN} [Movie] [Dramas] A chef moves to Paris.{END_TOKEN}\n"
        f"{START_TOKEN} [Movie] [Dramas] Two rivals share a flat.{END_TOKEN}\n")
    # The hash of description-only text is what it was before titles existed: conditional=…, then the text.
    from generator.artifacts import sha256_text
    assert untitled["catalog_hash"] == sha256_text("conditional=True\n" + (tmp_path / "plain" / "train.txt").read_text())
    titled = ingest(str(csv_path), tmp_path / "titled", IngestSettings(validation_fraction=0.0))
    assert titled["catalog_hash"] != untitled["catalog_hash"] and untitled["titles"] is False


def test_titles_are_cleaned_and_untitled_rows_stay_out_of_titled_text(tmp_path):
    def titled_row(n, title, description):
        return f's{n},Movie,"{title}",,,,,2020,,,Dramas,"{description}"\n'

    text = HEADER + "".join([titled_row(1, "Black Holes | The Edge", "A physicist chases a shadow."),
                             titled_row(2, "[REC]", "A reporter films a quarantine."),
                             titled_row(3, "", "A dog walks home alone.")])
    manifest = ingest(str(write(tmp_path, text)), tmp_path / "out", IngestSettings(validation_fraction=0.0))
    assert (tmp_path / "out" / "train.txt").read_text().splitlines() == [
        f"{START_TOKEN} [Movie] [Dramas] Black Holes: The Edge | A physicist chases a shadow.{END_TOKEN}",
        f"{START_TOKEN} [Movie] [Dramas] (REC) | A reporter films a quarantine.{END_TOKEN}"]
    assert manifest["untitled"] == 1 and manifest["kept"] == 3
    records = [json.loads(line) for line in (tmp_path / "out" / "catalog.jsonl").read_text().splitlines()]
    assert [r["title"] for r in records] == ["Black Holes | The Edge", "[REC]", ""]  # catalog.jsonl keeps them as read


def test_a_catalog_mostly_without_titles_trains_on_descriptions(tmp_path, caplog):
    text = "description,title\n" + "".join(f'"Description number {n} of a dull list.",\n' for n in range(3)) + \
        '"A titled one for once.",Lone Title\n'
    manifest = ingest(str(write(tmp_path, text)), tmp_path / "out", IngestSettings(validation_fraction=0.0))
    assert manifest["titles"] is False and " | " not in (tmp_path / "out" / "train.txt").read_text()
    assert "only 1 of 4 descriptions have a title" in caplog.text


def test_tolerates_bom_and_spaced_header_and_drops_empty_and_duplicates(tmp_path):
    header = "\ufeff show_id , type ,title,director,cast,country,date_added,release_year,rating,duration,listed_in, Description \n"
    text = header + row(1, "A chef moves to Paris.") + row(2, "") + row(3, "a chef moves to  Paris.") + row(4, "Too short")
    manifest = ingest(str(write(tmp_path, text)), tmp_path / "out", IngestSettings(validation_fraction=0.0))
    assert manifest["kept"] == 1
    assert manifest["dropped"] == {"empty": 1, "duplicate": 1, "too_short": 1}


def test_markers_inside_descriptions_are_removed(tmp_path):
    text = HEADER + row(1, f"A chef {END_TOKEN} moves to {START_TOKEN}Paris today.")
    ingest(str(write(tmp_path, text)), tmp_path / "out", IngestSettings(validation_fraction=0.0, conditional=False))
    assert (tmp_path / "out" / "train.txt").read_text().count(END_TOKEN) == 1


def test_split_is_deterministic_and_by_content(tmp_path, sample_catalog):
    first = ingest(str(sample_catalog), tmp_path / "a", IngestSettings())
    second = ingest(str(sample_catalog), tmp_path / "b", IngestSettings())
    assert (tmp_path / "a" / "val.txt").read_bytes() == (tmp_path / "b" / "val.txt").read_bytes()
    assert first["catalog_hash"] == second["catalog_hash"] and first["val_count"] > 0
    assert is_validation("same text", 0.5) == is_validation("same text", 0.5)


def test_catalog_hash_changes_with_content(tmp_path):
    one = ingest(str(write(tmp_path, HEADER + row(1, "A chef moves to Paris."), "one.csv")), tmp_path / "one",
                 IngestSettings(validation_fraction=0.0))
    two = ingest(str(write(tmp_path, HEADER + row(1, "A baker moves to Rome."), "two.csv")), tmp_path / "two",
                 IngestSettings(validation_fraction=0.0))
    assert one["catalog_hash"] != two["catalog_hash"]


def test_control_prefix_round_trip():
    assert control_prefix("TV Show", "Comedies") == "[TV Show] [Comedies] "
    assert split_control("[TV Show] [Comedies] A man.") == ("TV Show", "Comedies", "A man.")
    assert split_control("[Dramas] A man.") == (None, "Dramas", "A man.")
    assert split_control("A man [sic].") == (None, None, "A man [sic].")


@pytest.mark.parametrize("content, needle", [
    (None, "not found"),
    ("", "empty"),
    ("show_id,title\ns1,Foo\n", "no 'description' column"),
    (HEADER, "no usable descriptions"),
])
def test_bad_catalogs_raise_clear_errors(tmp_path, content, needle):
    path = tmp_path / "missing.csv" if content is None else write(tmp_path, content)
    with pytest.raises(UserError, match=needle):
        ingest(str(path), tmp_path / "out", IngestSettings())
    assert not (tmp_path / "out").exists()


def test_non_utf8_catalog_is_a_clear_cli_error(tmp_path):
    path = write(tmp_path, HEADER + row(1, "Un café à Paris, où tout commence."), encoding="utf-16")
    result = run_cli("ingest", "--catalog", str(path), "--out", str(tmp_path / "out"))
    assert_clean_error(result, "not UTF-8", "fix:")


def test_reads_catalog_over_http(tmp_path, sample_catalog):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sample_catalog.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{sample_catalog.name}"
        assert len(load_catalog(url, IngestSettings())) == len(load_catalog(str(sample_catalog), IngestSettings()))
        with pytest.raises(UserError, match="could not download"):
            load_catalog(f"http://127.0.0.1:{server.server_port}/nope.csv", IngestSettings())
    finally:
        server.shutdown()


@pytest.mark.parametrize("year, titles", [(2020, 7787), (2021, 8807)])
def test_real_snapshots(tmp_path, year, titles):
    manifest = ingest(str(shared_csv(year)), tmp_path / "out", IngestSettings())
    assert manifest["rows"] == titles
    assert manifest["kept"] > titles * 0.98
    assert 10 <= manifest["median_words"] <= 30 and manifest["max_words"] <= 60
    assert set(manifest["types"]) == {"Movie", "TV Show"}
    records = [json.loads(line) for line in (tmp_path / "out" / "catalog.jsonl").read_text().splitlines()]
    assert all(r["genres"] for r in records)


def test_real_refresh_changes_hash(tmp_path):
    old = ingest(str(shared_csv(2020)), tmp_path / "old", IngestSettings())
    new = ingest(str(shared_csv(2021)), tmp_path / "new", IngestSettings())
    assert old["catalog_hash"] != new["catalog_hash"]
