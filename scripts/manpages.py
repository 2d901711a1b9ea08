#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Man pages of rvs, generated from one source: the binaries' own --help.

    scripts/manpages.py --bin DIR --out DIR      write rvsd.8 rvsadm.8 rvs.8 rvs-rules.5
    scripts/manpages.py --check-sources DIR...   every option the parsers accept
                                                 (read from the sources) is in the pages

The prose an operator needs besides the option list (description, exit
codes, files, examples, differences from ipvsadm) is in dist/man/NAME.in;
the option lists come from running the binaries (`rvsd --help`, `rvsadm -h`,
`rvs --help`, `rvs fwmark -h`, `rvs sysctl -h`), so a page cannot disagree
with the --help of the binaries it ships with.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "dist", "man")
PAGES = ["rvsd.8", "rvsadm.8", "rvs.8", "rvs-rules.5"]


def esc(text):
    """Roff-escape one line of text."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def verbatim(text):
    """A block shown as it is (no filling)."""
    lines = [".nf", ".RS 2"]
    lines += [esc(l) if l.strip() else "" for l in text.rstrip("\n").split("\n")]
    lines += [".RE", ".fi"]
    return "\n".join(lines)


def desc_column(lines):
    """The column where the descriptions of a help section start: the most
    common column of the text after the last gap of two or more spaces on
    an item line."""
    cols = collections.Counter()
    for l in lines:
        indent = len(l) - len(l.lstrip())
        if not l.strip() or indent > 8:
            continue
        m = None
        for m in re.finditer(r"\S  +(?=\S)", l):
            pass
        if m:
            cols[m.end()] += 1
    return cols.most_common(1)[0][0] if cols else None


def section_to_roff(lines):
    """Option/command lines of a --help section as .TP items; lines
    indented past the description column continue the item above."""
    col = desc_column(lines)
    out = []
    items = []  # (indent, term, [desc words])
    prose = []
    for l in lines:
        if not l.strip():
            continue
        indent = len(l) - len(l.lstrip())
        if col is None or (indent == 0 and not l.lstrip().startswith("-")):
            prose.append(l.strip())
            continue
        if indent >= col - 1 and items:
            items[-1][2].append(l.strip())
            continue
        if len(l) > col and l[col - 1] == " ":
            items.append((indent, l[:col].strip(), [l[col:].strip()]))
        else:
            items.append((indent, l.strip(), []))
    if prose:
        out.append(".PP")
        out += [esc(p) for p in prose]
    base = min((i for i, _, _ in items), default=0)
    nested = False
    for indent, term, desc in items:
        if indent > base and not nested:
            out.append(".RS")
            nested = True
        elif indent == base and nested:
            out.append(".RE")
            nested = False
        out.append(".TP")
        out.append("\\fB" + esc(re.sub(r"  +", ", ", term)) + "\\fR")
        if desc:
            out.append(esc(" ".join(desc)))
    if nested:
        out.append(".RE")
    return "\n".join(out)


def help_to_roff(text):
    """A --help text: 'Title:' lines at column 0 start subsections; the
    'Usage' part goes to the synopsis (returned separately)."""
    synopsis = []
    sections = []  # (title, lines)
    cur = None
    for l in text.rstrip("\n").split("\n"):
        m = re.match(r"^([A-Za-z][A-Za-z -]*):\s*(.*)$", l)
        if m and m.group(1) != "Usage" and m.group(2):
            m = None  # a sentence with a colon, not a title
        if m:
            title, rest = m.group(1), m.group(2)
            if title == "Usage":
                cur = "usage"
                if rest:
                    synopsis.append(rest)
                continue
            cur = (title, [])
            sections.append(cur)
            continue
        if cur == "usage":
            if l.strip():
                synopsis.append(l.strip())
            else:
                cur = ("", [])
                sections.append(cur)
            continue
        if cur is None:
            continue  # rvsadm's version line
        cur[1].append(l)
    out = []
    for title, lines in sections:
        if not title or not any(l.strip() for l in lines):
            continue  # untitled: rvsd's description, in the page's own words
        if title:
            out.append(".SS " + esc(title))
        out.append(section_to_roff(lines))
    return synopsis, "\n".join(out)


def synopsis_roff(lines, name):
    out = []
    for l in lines:
        l = re.sub(r"^\S*/", "", l)  # a path as argv0
        words = l.split(None, 1)
        if words and words[0] == name:
            out.append(".br")
            out.append("\\fB" + esc(name) + "\\fR " + esc(words[1] if len(words) > 1 else ""))
        else:
            out.append(".br")
            out.append(esc(l))
    return "\n".join(out[1:] if out and out[0] == ".br" else out)


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    return r.stdout


def version_and_date(bindir):
    version = run(os.path.join(bindir, "rvs"), "--version").split()[-1]
    date = os.environ.get("RVS_MAN_DATE")
    if not date:
        try:
            date = subprocess.run(
                ["git", "-C", ROOT, "log", "-1", "--format=%cs"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            date = ""
    return version, date or "2026-01-01"


def generate(bindir, outdir):
    version, date = version_and_date(bindir)
    b = lambda n: os.path.join(bindir, n)  # noqa: E731
    subst = {"VERSION": version, "DATE": date}
    syn, body = help_to_roff(run(b("rvsd"), "--help"))
    subst["RVSD_SYNOPSIS"], subst["RVSD_OPTIONS"] = synopsis_roff(syn, "rvsd"), body
    syn, body = help_to_roff(run(b("rvsadm"), "-h"))
    subst["RVSADM_SYNOPSIS"], subst["RVSADM_OPTIONS"] = synopsis_roff(syn, "rvsadm"), body
    syn, body = help_to_roff(run(b("rvs"), "--help"))
    subst["RVS_SYNOPSIS"], subst["RVS_COMMANDS"] = synopsis_roff(syn, "rvs"), body
    subst["RVS_FWMARK"] = verbatim(run(b("rvs"), "fwmark", "-h"))
    subst["RVS_SYSCTL"] = verbatim(run(b("rvs"), "sysctl", "-h"))
    for key, val in subst.items():
        if key not in ("VERSION", "DATE") and not val.strip():
            sys.exit(f"manpages.py: no help text for {key} from {bindir}")
    os.makedirs(outdir, exist_ok=True)
    for page in PAGES:
        with open(os.path.join(TEMPLATES, page + ".in")) as f:
            text = f.read()
        text = re.sub(r"@([A-Z_]+)@", lambda m: subst[m.group(1)], text)
        with open(os.path.join(outdir, page), "w") as f:
            f.write(text)


def accepted_options():
    """(page, option) for every option the parsers accept, read from the
    sources (test code left out)."""
    def src(path):
        with open(os.path.join(ROOT, path)) as f:
            return f.read().split("#[cfg(test)]")[0]

    found = []
    popt = src("crates/rvsadm/src/cli/popt.rs")
    for long, short in re.findall(r'def\("([a-z0-9-]+)", (?:Some\(\'(.)\'\)|None)', popt):
        found.append(("rvsadm.8", "--" + long))
        if short:
            found.append(("rvsadm.8", "-" + short))
    for path, page in [("crates/rvsd/src/options.rs", "rvsd.8"), ("crates/rvs/src/main.rs", "rvs.8")]:
        s = src(path)
        found += [(page, "--" + o) for o in re.findall(r'Long\("([a-z0-9-]+)"\)', s)]
        found += [(page, "-" + o) for o in re.findall(r"Short\('(.)'\)", s)]
    for path in ["crates/rvs/src/fwmark.rs", "crates/rvs/src/sysctl.rs", "crates/rvs-proto/src/fwmark.rs"]:
        s = src(path)
        found += [("rvs.8", o) for o in re.findall(r'"(--?[a-zA-Z][a-z-]*)"\s*(?:\||=>|\))', s)]
    return sorted(set(found))


def check_sources(mandir):
    missing = []
    pages = {}
    for page in PAGES:
        with open(os.path.join(mandir, page)) as f:
            # The page's text with roff's escapes of '-' undone.
            text = re.sub(r"\\f[BIRP]|\\&", "", f.read())
            pages[page] = text.replace("\\-", "-").replace("\\e", "\\")
    opts = accepted_options()
    for page, opt in opts:
        if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", pages[page]):
            missing.append(f"{page}: {opt}")
    if missing:
        print("options accepted but not in the man pages:\n  " + "\n  ".join(missing))
        return 1
    print(f"{len(opts)} options, each in its man page")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="directory of rvsd, rvsadm and rvs")
    ap.add_argument("--out", help="where to write the pages")
    ap.add_argument("--check-sources", metavar="MANDIR")
    a = ap.parse_args()
    if a.check_sources:
        return check_sources(a.check_sources)
    if not (a.bin and a.out):
        ap.error("--bin and --out, or --check-sources")
    generate(a.bin, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
