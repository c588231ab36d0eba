"""Import speed of .docx and PDF issues: a 20-page PDF must import in under 5 s on 2 cores.

    python benchmarks/import_office.py [--pages 20] [--runs 3]

Builds the sample issue typeset in two columns (tests/support/office_files.py) with its articles
repeated until the PDF has at least PAGES pages, and a .docx of the same text, then times
``read_issue`` on each (the whole import but the database: checks, layout analysis, reading order,
paragraphs, the text importer) in a process of its own, ``--runs`` times, and prints the best and
the worst with the peak RSS. The target is for the worst run of the PDF.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.office_files import (
    docx_direct,
    pdf_two_columns,
    sample_document,
)

TARGET_SECONDS = 5.0


def pages_of(data: bytes) -> int:
    from pdfminer.pdfpage import PDFPage

    return sum(1 for _ in PDFPage.get_pages(io.BytesIO(data)))


def long_pdf(pages: int) -> bytes:
    doc = sample_document()
    copies = 1
    while True:
        data = pdf_two_columns(doc, copies=copies)
        if pages_of(data) >= pages:
            return data
        copies += 1


Result = tuple[float, int, int]  # seconds, articles, peak RSS in KiB


def timed_import(data: bytes, source: str, out: multiprocessing.Queue[Result]) -> None:
    from distributor.issues.importer import read_issue

    start = time.perf_counter()
    report = read_issue(data, source=source)
    seconds = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((seconds, len(report.document.articles), rss_kib))


def measure(data: bytes, source: str, runs: int) -> list[Result]:
    results = []
    for _ in range(runs):
        queue: multiprocessing.Queue[Result] = multiprocessing.Queue()
        process = multiprocessing.Process(target=timed_import, args=(data, source, queue))
        process.start()
        results.append(queue.get())
        process.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pdf = long_pdf(args.pages)
    docx = docx_direct(sample_document())
    size = f"{len(pdf) / 1024:.0f} KiB; .docx {len(docx) / 1024:.0f} KiB"
    print(f"PDF: {pages_of(pdf)} pages, {size}")
    for name, data in (("issue.pdf", pdf), ("issue.docx", docx)):
        results = measure(data, name, args.runs)
        times = sorted(seconds for seconds, _, _ in results)
        articles, rss = results[0][1], max(kib for _, _, kib in results)
        line = (
            f"{name}: {articles} articles, best {times[0]:.2f} s, worst {times[-1]:.2f} s, "
            f"peak RSS {rss / 1024:.0f} MiB"
        )
        if name.endswith(".pdf"):
            verdict = "PASS" if times[-1] < TARGET_SECONDS else "MISSED"
            line += f" (target: under {TARGET_SECONDS:.0f} s) {verdict}"
        print(line)


if __name__ == "__main__":
    main()
