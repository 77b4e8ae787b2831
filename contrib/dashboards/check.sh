#!/usr/bin/env bash
# contrib/dashboards/check.sh -- the shipped Grafana dashboards must match real
# series: run against what collectd + the dotnet plugin actually wrote.
#
#   check.sh [--whisper DIR] [--prometheus-url URL] [--expect INSTANCE]...
#            [--var NAME=VALUE]... [--from EPOCH] [--until EPOCH]
#            [--rate-interval 15s] [--report FILE]
#            [--graphite-dashboard FILE] [--prometheus-dashboard FILE] [--meter]
#
# dotnet-graphite.json (with --whisper, carbon's LOCAL_DATA_DIR): every template
#   variable query is expanded against the whisper tree (Graphite globs: * ? [..]
#   {a,b}, the variable's regex applied) and must offer every --expect instance;
#   every panel target and annotation target is parsed, its variables
#   substituted the way Grafana does for Graphite (multi values as {a,b}), its
#   metric paths expanded against the tree and read with whisper, and its
#   functions evaluated (only the functions listed in GRAPHITE_FUNCS below;
#   any other is an error, so a new function needs its evaluator here first).
#   Each must return at least one series with a value in [--from, --until]
#   (an annotation: a value that is not 0, as Grafana skips those; with the
#   instance variable at All only, as one instance alone may have nothing to
#   mark).
# dotnet-prometheus.json (with --prometheus-url, a live Prometheus server): the
#   same for label_values() variables (through /api/v1/series) and for every
#   PromQL expr (instant query at --until; an annotation: a range query with its
#   step), with Grafana's Prometheus escaping of multi values ((a|b)).
#   $__rate_interval becomes --rate-interval. Every {{label}} of a legendFormat
#   must be a label of every series returned.
# Both: every query runs once with the instance variable at "All" (every value
# its query offered) and once for each --expect instance alone; the counters
# the runtime panels must show (REQUIRED below) must all come back; every
# panel uses the ${datasource} variable and the instance variable; there is a
# dump annotation and a text panel on dumps.
# --meter checks the System.Runtime meter's dashboards instead
# (dotnet-meter-graphite.json, dotnet-meter-prometheus.json) and the
# instruments they must show (REQUIRED_METER); counter names are compared
# with every . : and / as _ (Debian's write_graphite writes
# System_Runtime_dotnet_gc_pause_time), and an entry also covers its tagged
# series (NAME:tag=value).
# --var NAME=VALUE overrides a variable (e.g. dump_threshold, the dashed
# line). --report writes every result as JSON.
# Prints one line per check ("ok ..." / "FAIL ..."), then
# "check.sh: N checks, N failed"; exit status 1 if any failed, 2 on bad usage.
# Needs python3 and, for Graphite, python3-whisper (Debian's /usr/bin/python3
# is used when there).
DASH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DASH_DIR
# Debian's python3 (python3-whisper is installed for it), not one a version
# manager put first on PATH; CHECK_PYTHON overrides
PY=${CHECK_PYTHON:-python3}
[[ -z ${CHECK_PYTHON:-} && -x /usr/bin/python3 ]] && PY=/usr/bin/python3
exec "$PY" - "$@" <<'PY'
import argparse
import fnmatch
import itertools
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

REQUIRED = [
    "gc-heap-size", "gen-0-size", "gen-1-size", "gen-2-size", "loh-size",
    "poh-size", "alloc-rate", "time-in-gc", "total-pause-time-by-gc",
    "cpu-usage", "working-set", "threadpool-thread-count",
    "threadpool-queue-length", "threadpool-completed-items-count",
    "exception-count", "monitor-lock-contention-count",
    "methods-jitted-count", "time-in-jit",
]

# The System.Runtime meter's instruments (.NET 9 and later) the meter
# dashboards must show, as type instances (REQUIRED_METER_PROMETHEUS: those
# only the Prometheus one shows, none now)
REQUIRED_METER = [
    "System.Runtime:dotnet.gc.last_collection.heap.size:gc.heap.generation=" + g
    for g in ("gen0", "gen1", "gen2", "loh", "poh")
] + [
    "System.Runtime:dotnet.gc.collections:gc.heap.generation=" + g for g in ("gen0", "gen1", "gen2")
] + [
    "System.Runtime:dotnet.process.cpu.time:cpu.mode=" + m for m in ("user", "system")
] + [
    "System.Runtime:dotnet." + n for n in (
        "gc.heap.total_allocated", "gc.pause.time", "process.memory.working_set",
        "thread_pool.work_item.count", "thread_pool.thread.count",
        "thread_pool.queue.length", "exceptions", "monitor.lock_contentions",
        "jit.compiled_methods", "jit.compilation.time")
]
REQUIRED_METER_PROMETHEUS = []

ap = argparse.ArgumentParser(prog="check.sh")
ap.add_argument("--graphite-dashboard")
ap.add_argument("--prometheus-dashboard")
ap.add_argument("--meter", action="store_true")
ap.add_argument("--whisper", metavar="DIR")
ap.add_argument("--prometheus-url", metavar="URL")
ap.add_argument("--expect", action="append", default=[], metavar="INSTANCE")
ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
ap.add_argument("--from", dest="t_from", type=float)
ap.add_argument("--until", dest="t_until", type=float)
ap.add_argument("--rate-interval", default="15s")
ap.add_argument("--report", metavar="FILE")
args = ap.parse_args()
_stem = "dotnet-meter-" if args.meter else "dotnet-"
args.graphite_dashboard = args.graphite_dashboard or os.path.join(os.environ["DASH_DIR"], _stem + "graphite.json")
args.prometheus_dashboard = args.prometheus_dashboard or os.path.join(os.environ["DASH_DIR"], _stem + "prometheus.json")
if not args.whisper and not args.prometheus_url:
    ap.error("give --whisper DIR and/or --prometheus-url URL")
UNTIL = args.t_until or time.time()
FROM = args.t_from or UNTIL - 3600
OVERRIDES = {}
for kv in args.var:
    if "=" not in kv:
        ap.error("--var wants NAME=VALUE, not %r" % kv)
    k, v = kv.split("=", 1)
    OVERRIDES[k] = v

NCHECK = 0
NFAIL = 0
REPORT = []


def ok(msg):
    global NCHECK
    NCHECK += 1
    print("ok   " + msg)


def bad(msg):
    global NCHECK, NFAIL
    NCHECK += 1
    NFAIL += 1
    print("FAIL " + msg)


class CheckError(Exception):
    pass


# ---------------------------------------------------------------- variables

VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]")


def prom_regex_escape(v):
    # Grafana's prometheusSpecialRegexEscape: a backslash before each special
    # character, doubled for the PromQL string
    v = v.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), v)


def prom_plain_escape(v):
    # Grafana's prometheusRegularEscape
    return v.replace("\\", "\\\\\\\\").replace("'", "\\\\'")


class Var:
    def __init__(self, spec, values):
        self.spec = spec
        self.values = values  # selected values

    @property
    def multi(self):
        return bool(self.spec.get("multi") or self.spec.get("includeAll"))


def substitute(text, variables, kind, builtins):
    def rep(m):
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise CheckError("unknown variable $%s" % name)
        var = variables[name]
        vals = var.values
        if fmt not in (None, "glob", "regex", "raw"):
            raise CheckError("format :%s of $%s is not checked here" % (fmt, name))
        if fmt == "raw":
            return ",".join(vals)
        if kind == "graphite" or fmt == "glob":
            return vals[0] if len(vals) == 1 else "{" + ",".join(vals) + "}"
        if not var.multi and fmt != "regex":
            return prom_plain_escape(vals[0])
        esc = [prom_regex_escape(v) for v in vals]
        return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"
    return VAR_RE.sub(rep, text)


def apply_regex(spec, texts):
    rx = spec.get("regex") or ""
    if not rx:
        return sorted(set(texts))
    m = re.fullmatch(r"/(.*)/([a-z]*)", rx, re.S)
    if not m:
        raise CheckError("variable %s: regex %r is not /.../" % (spec["name"], rx))
    flags = re.I if "i" in m.group(2) else 0
    r = re.compile(m.group(1), flags)
    out = set()
    for t in texts:
        mm = r.search(t)
        if mm:
            out.add(mm.group(1) if mm.groups() else t)
    return sorted(out)


def var_query_text(spec):
    q = spec.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q or ""


def resolve_variables(dash, kind, find):
    """Resolves the dashboard's variables in order; returns
    (variables with every value selected, variable specs)."""
    variables = {}
    for spec in dash.get("templating", {}).get("list", []):
        name = spec["name"]
        t = spec.get("type")
        where = "%s variable $%s" % (kind, name)
        if t == "datasource":
            if spec.get("query") != kind:
                bad("%s: a %r data source variable in the %s dashboard" % (where, spec.get("query"), kind))
            continue
        if name in OVERRIDES:
            variables[name] = Var(spec, [OVERRIDES[name]])
            continue
        if t in ("textbox", "constant"):
            variables[name] = Var(spec, [spec.get("query", "")])
            continue
        if t == "custom":
            cur = spec.get("current", {}).get("value")
            vals = cur if isinstance(cur, list) else [cur]
            variables[name] = Var(spec, [str(v) for v in vals if v is not None])
            continue
        if t != "query":
            bad("%s: type %r is not checked here" % (where, t))
            continue
        q = var_query_text(spec)
        try:
            qq = substitute(q, variables, kind, {})
            texts = find(qq)
            vals = apply_regex(spec, texts)
        except CheckError as e:
            bad("%s: %s" % (where, e))
            continue
        if not vals:
            bad("%s: %r offers nothing" % (where, qq))
            continue
        missing = [e for e in args.expect if name == "instance" and e not in vals]
        if missing:
            bad("%s: %r offers %s, not %s" % (where, qq, vals, missing))
        else:
            ok("%s: %r offers %s" % (where, qq, vals))
        variables[name] = Var(spec, vals)
        REPORT.append({"dashboard": kind, "kind": "variable", "name": name,
                       "query": qq, "values": vals})
    return variables


def combos(variables):
    """The instance selections every query is run with: All, then each
    --expect instance alone."""
    out = [("All", variables)]
    if "instance" in variables:
        for e in args.expect:
            v = dict(variables)
            v["instance"] = Var(variables["instance"].spec, [e])
            out.append(("instance=" + e, v))
    return out


# ---------------------------------------------------------------- Graphite

def split_nodes(pattern):
    nodes, cur, depth = [], "", 0
    for c in pattern:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "." and depth == 0:
            nodes.append(cur)
            cur = ""
        else:
            cur += c
    nodes.append(cur)
    return nodes


def expand_braces(node):
    m = re.search(r"\{([^{}]*)\}", node)
    if not m:
        return [node]
    out = []
    for alt in m.group(1).split(","):
        out.extend(expand_braces(node[:m.start()] + alt + node[m.end():]))
    return out


def node_match(name, node):
    return any(fnmatch.fnmatchcase(name, p) for p in expand_braces(node))


def graphite_find(pattern, leaves_only=False):
    """Paths (dotted) matching pattern: branches (directories) and leaves
    (.wsp files) as graphite-web's finder reports them."""
    nodes = split_nodes(pattern)
    found = [("", args.whisper)]
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        nxt = []
        for dotted, d in found:
            try:
                entries = sorted(os.listdir(d))
            except OSError:
                continue
            for e in entries:
                full = os.path.join(d, e)
                if os.path.isdir(full):
                    if leaves_only and last:
                        continue
                    name = e
                elif last and e.endswith(".wsp"):
                    name = e[:-4]
                else:
                    continue
                if node_match(name, node):
                    nxt.append((dotted + "." + name if dotted else name, full))
        found = nxt
    return found


class Series:
    def __init__(self, name, points, path=None):
        self.name = name
        self.points = points  # [(t, v or None)]
        self.paths = [path] if path else []


def fetch_path(pattern, covered):
    import whisper
    out = []
    for dotted, f in graphite_find(pattern, leaves_only=True):
        (start, end, step), vals = whisper.fetch(f, FROM, UNTIL)
        pts = list(zip(range(start, end, step), vals))
        out.append(Series(dotted, pts, dotted))
        last = dotted.rsplit(".", 1)[-1]
        if "-" in last:
            covered.add(last.split("-", 1)[1])
    return out


def gparse(text):
    pos = [0]

    def ws():
        while pos[0] < len(text) and text[pos[0]].isspace():
            pos[0] += 1

    def expr():
        ws()
        if pos[0] >= len(text):
            raise CheckError("unexpected end of target")
        c = text[pos[0]]
        if c in "'\"":
            end = text.find(c, pos[0] + 1)
            if end < 0:
                raise CheckError("unterminated string")
            s = text[pos[0] + 1:end]
            pos[0] = end + 1
            return ("str", s)
        m = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(").match(text, pos[0])
        if m:
            pos[0] = m.end()
            fargs = []
            ws()
            if text[pos[0]:pos[0] + 1] == ")":
                pos[0] += 1
                return ("call", m.group(1), fargs)
            while True:
                fargs.append(expr())
                ws()
                c = text[pos[0]:pos[0] + 1]
                pos[0] += 1
                if c == ")":
                    return ("call", m.group(1), fargs)
                if c != ",":
                    raise CheckError("expected , or ) at %d in %r" % (pos[0] - 1, text))
        start, depth = pos[0], 0
        while pos[0] < len(text):
            c = text[pos[0]]
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
            elif depth == 0 and c in ",)":
                break
            pos[0] += 1
        tok = text[start:pos[0]].strip()
        if re.fullmatch(r"-?\d+(\.\d*)?([eE][-+]?\d+)?", tok):
            return ("num", float(tok))
        if tok in ("true", "false", "True", "False"):
            return ("bool", tok.lower() == "true")
        if not tok or "(" in tok or " " in tok:
            raise CheckError("cannot parse %r" % tok)
        return ("path", tok)

    e = expr()
    ws()
    if pos[0] != len(text):
        raise CheckError("trailing text %r" % text[pos[0]:])
    return e


def _series(x, fn):
    if not isinstance(x, list):
        raise CheckError("%s: wants a series list" % fn)
    return x


def _num(x, fn):
    if not isinstance(x, float):
        raise CheckError("%s: wants a number, got %r" % (fn, x))
    return x


def _str(x, fn):
    if not isinstance(x, str):
        raise CheckError("%s: wants a string, got %r" % (fn, x))
    return x


def f_alias(a):
    sl, name = _series(a[0], "alias"), _str(a[1], "alias")
    for s in sl:
        s.name = name
    return sl


def f_aliasSub(a):
    sl, search, repl = _series(a[0], "aliasSub"), _str(a[1], "aliasSub"), _str(a[2], "aliasSub")
    for s in sl:
        s.name = re.sub(search, repl, s.name)
    return sl


def f_aliasByNode(a):
    sl = _series(a[0], "aliasByNode")
    idx = [int(_num(n, "aliasByNode")) for n in a[1:]]
    for s in sl:
        parts = s.name.split(".")
        s.name = ".".join(parts[i] for i in idx)
    return sl


def f_scale(a):
    sl, k = _series(a[0], "scale"), _num(a[1], "scale")
    for s in sl:
        s.points = [(t, None if v is None else v * k) for t, v in s.points]
    return sl


def f_removeBelowValue(a):
    sl, n = _series(a[0], "removeBelowValue"), _num(a[1], "removeBelowValue")
    for s in sl:
        s.points = [(t, None if v is None or v < n else v) for t, v in s.points]
    return sl


def f_constantLine(a):
    v = _num(a[0], "constantLine")
    return [Series(repr(v), [(int(FROM), v), (int(UNTIL), v)])]


def _derive(sl, per_second):
    for s in sl:
        out, prev = [], None
        for t, v in s.points:
            d = None
            if v is not None and prev is not None and v >= prev[1]:
                d = (v - prev[1]) / ((t - prev[0]) if per_second else 1)
            out.append((t, d))
            if v is not None:
                prev = (t, v)
        s.points = out
    return sl


def f_groupByNode(a):
    # groupByNode(seriesList, nodeNum, "sumSeries"): one series per value of
    # that node (a negative one counts from the end), the sum of the values
    # at each time that are not None (None where all are), as graphite-web
    sl, n = _series(a[0], "groupByNode"), int(_num(a[1], "groupByNode"))
    cb = _str(a[2], "groupByNode") if len(a) > 2 else "average"
    if cb not in ("sum", "sumSeries"):
        raise CheckError("groupByNode: callback %r is not evaluated by check.sh" % cb)
    groups = {}
    for s in sl:
        parts = s.name.split(".")
        if not -len(parts) <= n < len(parts):
            raise CheckError("groupByNode: %s has no node %d" % (s.name, n))
        groups.setdefault(parts[n], []).append(s)
    out = []
    for key, members in sorted(groups.items()):
        acc = {}
        for s in members:
            for t, v in s.points:
                if v is not None:
                    acc[t] = acc.get(t, 0.0) + v
                else:
                    acc.setdefault(t, None)
        g = Series(key, sorted(acc.items()))
        g.paths = [p for s in members for p in s.paths]
        out.append(g)
    return out


GRAPHITE_FUNCS = {
    "groupByNode": f_groupByNode,
    "alias": f_alias,
    "aliasSub": f_aliasSub,
    "aliasByNode": f_aliasByNode,
    "scale": f_scale,
    "removeBelowValue": f_removeBelowValue,
    "constantLine": f_constantLine,
    "perSecond": lambda a: _derive(_series(a[0], "perSecond"), True),
    "nonNegativeDerivative": lambda a: _derive(_series(a[0], "nonNegativeDerivative"), False),
}


def geval(node, covered):
    k = node[0]
    if k == "path":
        if re.search(r"(?<!\\)=", node[1]):
            raise CheckError("path %s has an unescaped '=': graphite-web's grammar reads a keyword argument "
                             "there; match it with ? or write \\=" % node[1])
        sl = fetch_path(node[1].replace("\\=", "="), covered)
        if not sl:
            raise CheckError("path %s matches no whisper file" % node[1])
        return sl
    if k in ("str", "num", "bool"):
        return node[1]
    name, fargs = node[1], node[2]
    if name not in GRAPHITE_FUNCS:
        raise CheckError("function %s() is not evaluated by check.sh" % name)
    return GRAPHITE_FUNCS[name]([geval(a, covered) for a in fargs])


def check_graphite(path):
    try:
        dash = json.load(open(path))
    except (OSError, ValueError) as e:
        bad("graphite: %s: %s" % (path, e))
        return
    check_structure(dash, "graphite")

    def find(q):
        return [d.rsplit(".", 1)[-1] for d, _ in graphite_find(q)]

    variables = resolve_variables(dash, "graphite", find)
    covered = set()
    for label, vs in combos(variables):
        for where, target, is_anno in graphite_queries(dash):
            desc = "graphite %s [%s]" % (where, label)
            try:
                q = substitute(target, vs, "graphite", {})
                sl = geval(gparse(q), covered)
                if not isinstance(sl, list):
                    raise CheckError("not a series list")
            except CheckError as e:
                bad("%s: %s" % (desc, e))
                continue
            except Exception as e:  # a bad regex, a whisper error
                bad("%s: %s: %s" % (desc, type(e).__name__, e))
                continue
            summary = summarize(sl, is_anno)
            REPORT.append({"dashboard": "graphite", "kind": "annotation" if is_anno else "panel",
                           "where": where, "selection": label, "query": q,
                           "series": summary})
            npts = sum(s["points"] for s in summary)
            if npts == 0 and is_anno and label != "All":
                ok("%s: runs, marks nothing for this selection" % desc)
            elif npts == 0:
                bad("%s: %s: %d series, no %s in the time range" % (
                    desc, q, len(sl), "non-zero value" if is_anno else "value"))
            else:
                ok("%s: %d series (%s), %d points" % (
                    desc, len(sl), ", ".join(sorted(s["name"] for s in summary)), npts))
    check_covered("graphite", covered)


def graphite_queries(dash):
    for p in dash.get("panels", []):
        for t in p.get("targets", []):
            if t.get("hide"):
                continue
            yield ('panel "%s" %s' % (p.get("title"), t.get("refId")), t.get("target", ""), False)
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        t = a.get("target")
        t = t.get("target") if isinstance(t, dict) else t
        yield ('annotation "%s"' % a.get("name"), t or "", True)


def summarize(sl, is_anno):
    out = []
    for s in sl:
        vals = [(t, v) for t, v in s.points
                if v is not None and not (isinstance(v, float) and math.isnan(v))
                and (not is_anno or v != 0)]
        item = {"name": s.name, "points": len(vals)}
        if vals:
            item.update(first=vals[0][0], last=vals[-1][0],
                        min=min(v for _, v in vals), max=max(v for _, v in vals))
            if is_anno:
                item["times"] = [t for t, _ in vals]
        out.append(item)
    return out


# ---------------------------------------------------------------- Prometheus

def prom_get(path, params):
    url = args.prometheus_url.rstrip("/") + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            raise CheckError("HTTP %d from %s" % (e.code, path))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise CheckError("%s: %s" % (path, e))
    if body.get("status") != "success":
        raise CheckError("%s: %s: %s" % (path, body.get("errorType"), body.get("error")))
    return body["data"]


def prom_find(q):
    m = re.fullmatch(r"\s*label_values\((.*)\)\s*", q, re.S)
    if not m:
        raise CheckError("only label_values() variable queries are checked: %r" % q)
    inner = m.group(1)
    # label_values(label) or label_values(selector, label)
    mm = re.fullmatch(r"(.*),\s*(\w+)\s*", inner, re.S)
    if mm:
        sel, label = mm.group(1), mm.group(2)
        data = prom_get("/api/v1/series", {"match[]": sel, "start": FROM, "end": UNTIL})
        return [s[label] for s in data if label in s]
    return prom_get("/api/v1/label/%s/values" % inner.strip(), {"start": FROM, "end": UNTIL})


def prom_builtins():
    return {"__rate_interval": args.rate_interval, "__interval": "1s",
            "__range": "%ds" % int(UNTIL - FROM), "__range_s": str(int(UNTIL - FROM))}


def step_seconds(s):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s or "")
    if not m:
        return 60
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def check_prometheus(path):
    try:
        dash = json.load(open(path))
    except (OSError, ValueError) as e:
        bad("prometheus: %s: %s" % (path, e))
        return
    check_structure(dash, "prometheus")
    variables = resolve_variables(dash, "prometheus", prom_find)
    covered = set()
    for label, vs in combos(variables):
        for where, expr, legend, anno in prom_queries(dash):
            desc = "prometheus %s [%s]" % (where, label)
            try:
                q = substitute(expr, vs, "prometheus", prom_builtins())
                if anno is None:
                    data = prom_get("/api/v1/query", {"query": q, "time": UNTIL})
                    if data["resultType"] != "vector":
                        raise CheckError("result type %s, not vector" % data["resultType"])
                    res = [(s["metric"], [(float(s["value"][0]), float(s["value"][1]))])
                           for s in data["result"]]
                else:
                    step = step_seconds(anno)
                    data = prom_get("/api/v1/query_range", {"query": q, "start": FROM,
                                                           "end": UNTIL, "step": step})
                    res = [(s["metric"], [(float(t), float(v)) for t, v in s["values"]])
                           for s in data["result"]]
            except CheckError as e:
                bad("%s: %s" % (desc, e))
                continue
            for metric, _ in res:
                if "type" in metric:
                    covered.add(metric["type"])
            summary = []
            for metric, pts in res:
                good = [(t, v) for t, v in pts if math.isfinite(v) and (anno is None or v > 0)]
                item = {"labels": metric, "points": len(good)}
                if good:
                    item.update(first=good[0][0], last=good[-1][0],
                                min=min(v for _, v in good), max=max(v for _, v in good))
                    if anno is not None:
                        item["times"] = [t for t, _ in good]
                summary.append(item)
            REPORT.append({"dashboard": "prometheus", "kind": "panel" if anno is None else "annotation",
                           "where": where, "selection": label, "query": q, "series": summary})
            missing = sorted({l for l in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend or "")
                              for m, _ in res if l not in m})
            if not any(s["points"] for s in summary) and anno is not None and label != "All":
                ok("%s: runs, marks nothing for this selection" % desc)
            elif not any(s["points"] for s in summary):
                bad("%s: %s: %d series, no finite value" % (desc, q, len(res)))
            elif missing:
                bad("%s: legend names labels %s that its series lack" % (desc, missing))
            else:
                names = sorted("%s/%s" % (m.get("dotnet", "-"), m.get("type", "-")) for m, _ in res)
                ok("%s: %d series (%s)" % (desc, len(res), ", ".join(names)))
    check_covered("prometheus", covered)


def prom_queries(dash):
    for p in dash.get("panels", []):
        for t in p.get("targets", []):
            if t.get("hide"):
                continue
            yield ('panel "%s" %s' % (p.get("title"), t.get("refId")), t.get("expr", ""),
                   t.get("legendFormat"), None)
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("builtIn"):
            continue
        t = a.get("target") if isinstance(a.get("target"), dict) else {}
        expr = t.get("expr") or a.get("expr") or ""
        step = t.get("interval") or a.get("step") or "60s"
        yield ('annotation "%s"' % a.get("name"), expr, None, step)


# ---------------------------------------------------------------- both

def check_structure(dash, kind):
    name = "%s dashboard" % kind
    problems = []
    for k in ("title", "uid", "panels", "templating", "annotations", "schemaVersion"):
        if k not in dash:
            problems.append("no %r" % k)
    specs = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if "instance" not in specs:
        problems.append("no template variable 'instance'")
    elif not specs["instance"].get("multi"):
        problems.append("the instance variable is not multi-value")
    if "datasource" not in specs:
        problems.append("no datasource variable")
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    qkey = "target" if kind == "graphite" else "expr"
    for p in dash.get("panels", []):
        if "gridPos" not in p:
            problems.append('panel "%s" has no gridPos' % p.get("title"))
        if p.get("type") in ("text", "row"):
            continue
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append('panel "%s" does not use ${datasource}' % p.get("title"))
        if not p.get("targets"):
            problems.append('panel "%s" has no query' % p.get("title"))
        for t in p.get("targets", []):
            q = t.get(qkey, "")
            if not q:
                problems.append('panel "%s" %s has no %s' % (p.get("title"), t.get("refId"), qkey))
            constant = re.search(r"constantLine\(|vector\(", q) and "instance" not in q
            if not constant and not re.search(r"\$\{?instance\b|\[\[instance", q):
                problems.append('panel "%s" %s ignores $instance' % (p.get("title"), t.get("refId")))
    annos = [a for a in dash.get("annotations", {}).get("list", []) if not a.get("builtIn")]
    if not any("dump" in (a.get("name") or "").lower() for a in annos):
        problems.append("no dump annotation")
    if not any(p.get("type") == "text" and "dump" in json.dumps(p.get("options", {})).lower()
               for p in dash.get("panels", [])):
        problems.append("no text panel on dumps")
    if problems:
        bad("%s: %s" % (name, "; ".join(problems)))
    else:
        ok("%s: %d panels, variables %s, annotations %s" % (
            name, len(ids), sorted(specs), [a.get("name") for a in annos]))


def norm_name(n):
    return re.sub(r"[./:]", "_", n)


def check_covered(kind, covered):
    if args.meter:
        want = REQUIRED_METER + (REQUIRED_METER_PROMETHEUS if kind == "prometheus" else [])
    else:
        want = REQUIRED
    got = {norm_name(c) for c in covered}
    missing = [c for c in want
               if not any(g == norm_name(c) or g.startswith(norm_name(c) + "_") for g in got)]
    if missing:
        bad("%s dashboard: counters with no series: %s" % (kind, missing))
    else:
        ok("%s dashboard: all %d required counters come back" % (kind, len(want)))


if args.whisper:
    check_graphite(args.graphite_dashboard)
if args.prometheus_url:
    check_prometheus(args.prometheus_dashboard)
if args.report:
    with open(args.report, "w") as f:
        json.dump(REPORT, f, indent=1)
print("check.sh: %d checks, %d failed" % (NCHECK, NFAIL))
sys.exit(1 if NFAIL else 0)
PY
