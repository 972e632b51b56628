"""Splitting a `break` argument line the way GDB's linespec parser does, for
the one path where we cannot hand the line to a GDB command verbatim:
software breakpoints made through gdb.Breakpoint (which takes only a
location) once the built-in `break` has been replaced by our Python command.

    LOCATION [-force-condition] [thread N] [task N] [if CONDITION]

The keywords count only as whole words outside quotes, as in GDB.
"""

import re

_KEYWORDS = ("if", "thread", "task", "-force-condition")


def _words(text):
    """(start, end) of each whitespace-separated word, quotes kept whole."""
    out = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        quote = None
        while i < n and (quote or not text[i].isspace()):
            c = text[i]
            if quote:
                if c == "\\" and i + 1 < n:
                    i += 1
                elif c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            i += 1
        out.append((start, i))
    return out


class BreakArgs:
    def __init__(self, location="", condition=None, thread=None, task=None, force=False):
        self.location = location
        self.condition = condition
        self.thread = thread
        self.task = task
        self.force = force

    def __repr__(self):
        return "BreakArgs(%r, condition=%r, thread=%r, task=%r, force=%r)" % (
            self.location,
            self.condition,
            self.thread,
            self.task,
            self.force,
        )


def parse(text):
    """Parses a break line; raises ValueError on what GDB would reject."""
    text = text.strip()
    words = _words(text)
    args = BreakArgs()
    loc_end = len(text)
    i = 0
    # The location is every word before the first keyword; a location that
    # starts with a keyword (e.g. `break if x`) is empty, as in GDB.
    while i < len(words):
        w = text[words[i][0] : words[i][1]]
        if w in _KEYWORDS:
            loc_end = words[i][0]
            break
        i += 1
    args.location = text[:loc_end].strip()
    while i < len(words):
        s, e = words[i]
        w = text[s:e]
        if w == "if":
            cond = text[e:].strip()
            if not cond:
                raise ValueError("Argument required (boolean expression).")
            args.condition = cond
            break
        if w == "-force-condition":
            args.force = True
            i += 1
            continue
        if w in ("thread", "task"):
            if i + 1 >= len(words):
                raise ValueError("Junk at end of arguments.")
            val = text[words[i + 1][0] : words[i + 1][1]]
            if not re.fullmatch(r"\d+(\.\d+)?", val):
                raise ValueError("Invalid %s ID: %s" % (w, val))
            setattr(args, w, val)
            i += 2
            continue
        raise ValueError("Junk at end of arguments: %s" % text[s:])
    return args
