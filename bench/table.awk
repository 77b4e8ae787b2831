# bench/table.awk -- bench/run's table, from the outputs of a run in dir:
#   meta.txt           (the main input) key TAB value: date, machine, ...
#   cost/runs.tsv      bench/cost.sh's runs (plugin, tuned, counters, baseline)
#   parsers-raw.txt    compare-parsers.sh --paired's raw lines: SIDE PAIR WORKLOAD MB/s
#   parser-counts.txt  parser --runs 1: bytes and events of each workload
#   breach.txt         bench/breach-to-dump.sh's report
#   scale/scale.txt    bench/cost.sh --scale's verdict
# A part that did not run gives a row saying so.
#
#   awk -f bench/table.awk -v dir=OUTDIR OUTDIR/meta.txt

function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	lo = a[1]; hi = a[n]
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

# "m<unit> (lo..hi)" of a[1..n], numbers in format f; one run: "m<unit>"
function spread(a, n, f, unit,   m) {
	if (n == 0)
		return "-"
	m = median(a, n)
	if (n == 1)
		return sprintf(f "%s", m, unit)
	return sprintf(f "%s (" f ".." f ")", m, unit, lo, hi)
}

function row(what, figure, target, holds, cmd) {
	printf "| %s | %s | %s | %s | `%s` |\n", what, figure, target, holds, cmd
	if (holds == "no")
		nfail++
	else if (holds == "yes")
		nok++
}

function readable(f,   line, r) {
	r = (getline line < f) > 0
	close(f)
	return r
}

# The rows of one mode (plugin, tuned) at N = n: ratios to dotnet-counters
# run by run, and the CPU per watched process.
function mode_rows(mo, label, n, cmd,   j, rep, k, np, nc, nb, a, b, c, d, e, g, h, fig, r, m) {
	k = np = nc = nb = 0
	for (j = 1; j <= cnt[n]; j++) {
		rep = reps[n, j]
		if (((mo, n, rep) in us))
			{ a[++np] = us[mo, n, rep]; g[np] = pss[mo, n, rep] }
		if ((("counters", n, rep) in us))
			{ b[++nc] = us["counters", n, rep]; h[nc] = pss["counters", n, rep] }
		if ((("baseline", n, rep) in us))
			e[++nb] = us["baseline", n, rep]
		if (((mo, n, rep) in us) && (("counters", n, rep) in us) && us[mo, n, rep] > 0) {
			c[++k] = us["counters", n, rep] / us[mo, n, rep]
			d[k] = pss["counters", n, rep] / pss[mo, n, rep]
		}
	}
	if (np == 0)
		return
	if (mo == "tuned")
		cmd = cmd " -m \"tuned counters\" -g \"" meta["tuned"] "\""
	else
		cmd = cmd " -m \"plugin counters baseline\""
	fig = spread(a, np, "%.0f", " µs/s")
	if (k > 0) {
		r = spread(c, k, "%.1f", "×")
		m = median(c, k)
		row(sprintf("CPU, N = %d: dotnet-counters / %s", n, label),
		    sprintf("%s; %s %s, dotnet-counters %s%s", r, mo, fig, spread(b, nc, "%.0f", " µs/s"),
		            nb ? ", collectd alone " spread(e, nb, "%.0f", " µs/s") : ""),
		    "≥ 20×", m >= 20 ? "yes" : "no", cmd)
		r = spread(d, k, "%.0f", "×")
		m = median(d, k)
		row(sprintf("memory (PSS), N = %d: dotnet-counters / %s", n, label),
		    sprintf("%s; %s %s, dotnet-counters %s", r, mo, spread(g, np, "%.0f", " KiB"), spread(h, nc, "%.0f", " KiB")),
		    "≥ 20×", m >= 20 ? "yes" : "no", cmd)
	}
	m = median(a, np)
	row(sprintf("CPU per watched process, N = %d, %s", n, label),
	    fig, "< 100 µs/s", m < 100 ? "yes" : "no", cmd)
}

function cost_rows(   f, line, x, n, mo, rep, k, i, j, c, m, nn, ns, raw, key, lo_n, hi_n, cmd) {
	f = dir "/cost/runs.tsv"
	if (!readable(f)) {
		row("CPU and memory per watched process", "not run", "", "-", "bench/run")
		return
	}
	while ((getline line < f) > 0) {
		split(line, x, "\t")
		if (x[1] == "mode" || x[5] <= 0)
			continue
		mo = x[1]; n = x[2] + 0; rep = x[3]
		key = mo SUBSEP n SUBSEP rep
		us[key] = x[4] / x[5] * 1e6 / n   # µs CPU per watched process per s
		pss[key] = x[7] / n                 # KiB per watched process
		raw[key] = x[7]
		if (!(n in cnt)) { ns[++nn] = n; cnt[n] = 0 }
		if (!((n, rep) in seenrep)) { seenrep[n, rep] = 1; reps[n, ++cnt[n]] = rep }
	}
	close(f)
	# N in increasing order
	for (i = 2; i <= nn; i++) {
		k = ns[i]
		for (j = i - 1; j >= 1 && ns[j] > k; j--)
			ns[j + 1] = ns[j]
		ns[j + 1] = k
	}
	for (i = 1; i <= nn; i++) {
		n = ns[i]
		cmd = sprintf("bench/cost.sh -W network -n %d -r %s -s %s", n, meta["reps"], meta["seconds"])
		mode_rows("plugin", "collectd with the plugin", n, cmd)
		mode_rows("tuned", "collectd with the plugin and " meta["tuned"], n, cmd)
	}
	# memory per session: the slope of collectd's PSS from the least N to
	# the most, run by run
	lo_n = ns[1]; hi_n = ns[nn]
	if (nn >= 2 && hi_n > lo_n) {
		k = 0; delete c
		for (j = 1; j <= cnt[hi_n]; j++) {
			rep = reps[hi_n, j]
			if ((("plugin", hi_n, rep) in raw) && (("plugin", lo_n, rep) in raw))
				c[++k] = (raw["plugin", hi_n, rep] - raw["plugin", lo_n, rep]) / (hi_n - lo_n)
		}
		if (k > 0) {
			m = median(c, k)
			row(sprintf("memory per session: collectd's PSS from N = %d to N = %d, per added process", lo_n, hi_n),
			    spread(c, k, "%.0f", " KiB"), "< 64 KiB", m < 64 ? "yes" : "no",
			    sprintf("bench/cost.sh -W network -n \"%d %d\" -r %s -s %s -m plugin", lo_n, hi_n, meta["reps"], meta["seconds"]))
		}
	}
}

function parser_rows(   f, f2, line, x, w, ws, k, i, n, ev, mb, v, pairs, c, t, q, cmd, m, fig) {
	f = dir "/parsers-raw.txt"
	cmd = sprintf("bench/compare-parsers.sh --paired %s", meta["pairs"])
	if (!readable(f)) {
		row("parser: C / TraceEvent", "not run", "≥ 10×", "-", cmd)
		return
	}
	# events a run of each workload, for events/s
	f2 = dir "/parser-counts.txt"
	while ((getline line < f2) > 0) {
		if (line !~ /^(stream|fresh): /)
			continue
		split(line, x, " ")
		w = substr(x[1], 1, length(x[1]) - 1)
		for (i = 2; i < length(x); i++)
			if (x[i + 1] == "events,")
				ev[w] = x[i] + 0
		mb[w] = x[2] + 0
	}
	close(f2)
	while ((getline line < f) > 0) {
		n = split(line, x, " ")
		if (n != 4 || (x[1] != "C" && x[1] != "TE") || x[2] !~ /^[0-9]+$/ || x[2] == 0)
			continue
		v[x[1], x[3], x[2]] = x[4] + 0
		if (x[2] + 0 > pairs)
			pairs = x[2] + 0
	}
	close(f)
	split("stream fresh", ws, " ")
	for (k = 1; k <= 2; k++) {
		w = ws[k]; n = 0; delete c; delete t; delete q
		for (i = 1; i <= pairs; i++)
			if (("C", w, i) in v && ("TE", w, i) in v && v["TE", w, i] > 0) {
				c[++n] = v["C", w, i]; t[n] = v["TE", w, i]
				q[n] = c[n] / t[n]
			}
		if (n == 0) {
			row("parser, " w ": C / TraceEvent", "no pairs", "≥ 10×", "-", cmd)
			continue
		}
		m = median(q, n)
		fig = sprintf("%s over %d pairs; C %s", spread(q, n, "%.1f", "×"), n, spread(c, n, "%.0f", " MB/s"))
		if (w in ev && mb[w] > 0)
			fig = fig sprintf(" (%.1f M events/s)", median(c, n) * ev[w] / mb[w] / 1e6)
		fig = fig sprintf(", TraceEvent %s", spread(t, n, "%.0f", " MB/s"))
		if (w in ev && mb[w] > 0)
			fig = fig sprintf(" (%.2f M events/s)", median(t, n) * ev[w] / mb[w] / 1e6)
		row("parser, " (w == "stream" ? "one long stream" : "fresh sessions") ": C / TraceEvent, one core", fig, "≥ 10×", m >= 10 ? "yes" : "no", cmd)
	}
}

function breach_rows(   f, line, x, n, med, worst, best, spikes, dumps, inspike, cmd) {
	f = dir "/breach.txt"
	cmd = sprintf("bench/breach-to-dump.sh %s", meta["spikes"])
	med = ""
	while ((getline line < f) > 0) {
		if (line ~ /^breach to dump start over /) {
			split(line, x, " ")
			spikes = x[6]; med = x[9]; worst = x[12]; best = x[15]
		}
		if (line ~ /^dumps: /)
			dumps = substr(line, 8)
	}
	close(f)
	if (med == "") {
		row("breach to dump start", "not run (or no dump)", "< 1 s median", "-", cmd)
		return
	}
	row(sprintf("breach (the sample above the threshold) to dump start, %d spikes", spikes),
	    sprintf("%d ms (%d..%d); dumps: %s", med, best, worst, dumps), "< 1 s median",
	    med + 0 < 1000 ? "yes" : "no", cmd)
}

function scale_rows(   f, line, x, n, best, tried, held, cmd) {
	f = dir "/scale/scale.txt"
	cmd = sprintf("bench/cost.sh -W csv -n \"\" -s %s --scale \"%s\" -m plugin", meta["seconds"], meta["scale"])
	best = ""
	while ((getline line < f) > 0)
		if (line ~ /^scale: largest N /) {
			n = split(line, x, " ")
			best = x[11] + 0
			tried = substr(line, index(line, "(tried: ") + 8)
			sub(/\)$/, "", tried)
		}
	close(f)
	if (best == "") {
		row("processes held at 1 s with no missed interval", "not run", "100", "-", cmd)
		return
	}
	# every N tried held, the largest below 100: 100 was not tried
	n = split(tried, x, " ")
	held = best >= 100 ? "yes" : best == x[n] + 0 ? "- (100 not tried)" : "no"
	row("processes held at 1 s with no missed interval (csv rows of every instance)",
	    sprintf("%d (tried: %s)", best, tried), "100", held, cmd)
}

BEGIN { FS = "\t" }
{ meta[$1] = $2 }
END {
	printf "bench/run, %s, commit %s: %s; collectd %s; .NET %s\n", meta["date"], meta["commit"], meta["machine"], meta["collectd"], meta["dotnet"]
	printf "(figures: median (min..max) over %s runs of %s s a mode, ratios run by run)\n\n", meta["reps"], meta["seconds"]
	print "| what | figure | target | holds | reproduce |"
	print "|---|---|---|---|---|"
	cost_rows()
	parser_rows()
	breach_rows()
	scale_rows()
	printf "\n%d rows meet their target, %d do not\n", nok, nfail
}
