"""Keep the catalogs: ``python -m distributor.locale check | compile | absorb FILE...``.

- ``check``: every text the code and templates use exists in every catalog, translated; no
  catalog keeps a text nothing uses; the ``.mo`` files are those of the ``.po`` files.
- ``compile``: write each ``.mo`` from its ``.po`` (after editing a ``.po``).
- ``absorb FILE...``: add the texts of Python tables ``{"zh-CN": {key: text}, "en": {...}}`` (the
  dashboard's old ``TEXTS``/``STAFF_TEXTS`` dicts, as a branch still adds them) to the catalogs,
  then compile. Texts already in a catalog stay; a different wording is printed, and taken with
  ``--replace``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from distributor.locale import CATALOGS, DOMAIN, LOCALE_DIR
from distributor.locale.usage import usage

ROOT = LOCALE_DIR.parent.parent
SOURCE = "en"  # the language the code's English messages are in: translators read it


def po_path(lang: str) -> Path:
    return LOCALE_DIR / CATALOGS[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str) -> Catalog:
    path = po_path(lang)
    if not path.exists():
        return Catalog(
            locale=CATALOGS[lang],
            domain=DOMAIN,
            project="distributor",
            header_comment=f"# The texts of distributor's pages in {lang}: see distributor/locale.",
            fuzzy=False,
        )
    with path.open("rb") as file:
        return read_po(file, locale=CATALOGS[lang], domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def save(lang: str, catalog: Catalog) -> None:
    """The ``.po`` sorted by message id (merges of two branches' new texts stay apart), and
    its ``.mo``. Each text of another language than English has the English beside it as a note
    for its translator (the message id is a key, not a sentence); save English first."""
    if lang != SOURCE:
        english = read_catalog(SOURCE)
        for message in catalog:
            source = english.get(message.id) if message.id else None
            message.auto_comments = [str(source.string)] if source is not None else []
    path = po_path(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=100, sort_output=True, omit_header=False)
    path.with_suffix(".mo").write_bytes(compiled(read_catalog(lang)))


def problems(root: Path = ROOT) -> list[str]:
    """What ``check`` reports; empty when the catalogs are complete and compiled."""
    used = usage(root)
    found: list[str] = []
    for lang in CATALOGS:
        catalog = read_catalog(lang)
        texts = {
            str(message.id): str(message.string) for message in catalog if message.id
        }
        found += [f"{lang}: no text for {key}" for key in sorted(used.named - texts.keys())]
        found += [f"{lang}: {key} is empty" for key, text in sorted(texts.items()) if not text]
        found += [f"{lang}: {key} is used nowhere" for key in sorted(texts) if not used.uses(key)]
        mo = po_path(lang).with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            found.append(f"{lang}: {mo.relative_to(root)} is out of date: run compile")
    return found


def tables_in(path: Path) -> Iterable[Mapping[str, Mapping[str, str]]]:
    """The module-level ``{language: {key: text}}`` dicts a Python file defines. It is run (the
    tables are built with comprehensions); an import it cannot make ends the run, and the tables
    defined before it are still taken."""
    namespace: dict[str, object] = {"__name__": "absorbed"}
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    except ImportError as error:
        click.echo(f"{path}: stopped at {error}; took the tables defined before it", err=True)
    for value in namespace.values():
        if (
            isinstance(value, dict)
            and value
            and set(value) <= set(CATALOGS)
            and all(isinstance(texts, dict) for texts in value.values())
        ):
            yield value


def absorb(paths: Iterable[Path], *, replace: bool) -> int:
    """Adds the tables' texts to the catalogs; returns how many were added or replaced."""
    catalogs = {lang: read_catalog(lang) for lang in CATALOGS}
    changed = 0
    for path in paths:
        for table in tables_in(path):
            for lang, texts in table.items():
                catalog = catalogs[lang]
                for key, text in texts.items():
                    present = catalog.get(key)
                    if present is not None and present.string == text:
                        continue
                    if present is not None and present.string and not replace:
                        click.echo(f"{lang}: {key} kept {present.string!r}, not {text!r}")
                        continue
                    if present is not None:
                        del catalog[key]  # add() would merge into it, keeping its text
                    catalog.add(key, text)
                    changed += 1
    for lang in sorted(catalogs, key=lambda lang: lang != SOURCE):
        save(lang, catalogs[lang])
    return changed


@click.group()
def main() -> None:
    """Keep the gettext catalogs of distributor/locale."""


@main.command("check")
def check_command() -> None:
    """Every used text in every catalog, translated; none unused; .mo files compiled."""
    found = problems()
    for line in found:
        click.echo(line)
    if found:
        sys.exit(1)
    click.echo("catalogs complete: " + ", ".join(CATALOGS))


@main.command("compile")
def compile_command() -> None:
    """Write each .mo from its .po."""
    for lang in sorted(CATALOGS, key=lambda lang: lang != SOURCE):
        save(lang, read_catalog(lang))
        click.echo(f"compiled {po_path(lang).with_suffix('.mo').relative_to(ROOT)}")


@main.command("absorb")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--replace", is_flag=True, help="Take the file's wording of a text already there.")
def absorb_command(files: tuple[Path, ...], replace: bool) -> None:
    """Add the {language: {key: text}} tables of FILES to the catalogs, and compile."""
    click.echo(f"{absorb(files, replace=replace)} texts added or changed")


if __name__ == "__main__":
    main()
