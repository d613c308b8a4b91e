"""The search report's folded "Best trials" table links the CSV that holds every column (trials.csv),
by a relative link that works wherever the page is written, and names the file for a page sent alone."""

from __future__ import annotations

import re
import sys
from html import unescape
from pathlib import Path
from urllib.parse import unquote

from nasattn.report import render_report

sys.path.insert(0, str(Path(__file__).parent))
from test_report import check_self_contained, make_search


def _links(html: str) -> list[tuple[str, str]]:
    """(href, note text) of every CSV link note."""
    return [(unescape(h), unescape(re.sub(r"<[^>]+>", "", note)))
            for note, h in re.findall(r'(<p class="note csv-link">.*?href="([^"]+)".*?</p>)', html)]


def test_the_best_trials_table_links_trials_csv_beside_the_report(tmp_path):
    make_search(tmp_path, n_complete=3)
    html = render_report(tmp_path).read_text()
    check_self_contained(html)
    best = html.index('id="table-search-best-all"')  # the folded table with every column
    assert html.index("csv-link", best) < html.index("<h2", best)  # under it, before the next section
    [(href, note)] = _links(html)
    assert href == "trials.csv" and (tmp_path / href).is_file()
    assert f"the file trials.csv in {tmp_path.resolve()}" in note  # which file, for a page mailed alone


def test_a_report_written_elsewhere_links_the_same_csv(tmp_path):
    folder = tmp_path / "runs" / "my search"
    folder.mkdir(parents=True)
    make_search(folder, n_complete=3)
    out = render_report(folder, tmp_path / "mail" / "report.html")
    [(href, _)] = _links(out.read_text())
    assert not href.startswith("/") and (out.parent / unquote(href)).resolve() == (folder / "trials.csv").resolve()


def test_no_link_when_the_folder_has_no_trials_csv(tmp_path):
    make_search(tmp_path, n_complete=3)
    (tmp_path / "trials.csv").unlink()  # interrupted before trials.csv: the rows come from the study
    html = render_report(tmp_path).read_text()
    assert 'id="table-search-best-all"' in html and _links(html) == []
