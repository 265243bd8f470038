// The report as HTML: inline CSS and SVG only (no script, nothing fetched),
// so it opens offline and from a mail attachment. Its size depends on the
// number of ranks and bins, never on the number of tasks.
#include "cli/report_html.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <set>

#include "cli/verbs.hpp"
#include "mpibatch/version.hpp"

namespace mpibatch::detail {

namespace {

constexpr int kLeft = 110;  // room for the lanes' labels
constexpr int kPlot = 960;  // width of every chart's plot area
constexpr int kWidth = kLeft + kPlot + 60;

// printf onto a string.
void put(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));
void put(std::string& out, const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  if (n < 0) return;
  if (static_cast<std::size_t>(n) < sizeof buf) {
    out.append(buf, static_cast<std::size_t>(n));
    return;
  }
  std::string big(static_cast<std::size_t>(n) + 1, '\0');
  va_start(ap, format);
  std::vsnprintf(big.data(), big.size(), format, ap);
  va_end(ap);
  out.append(big.data(), static_cast<std::size_t>(n));
}

std::string seconds_text(double s) {
  char buf[64];
  if (!std::isfinite(s) || s < 0) return "-";
  if (s == 0) return "0 s";
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.3g \xC2\xB5s", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  else {
    const auto t = static_cast<long long>(std::llround(s));
    if (t < 3600)
      std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
    else
      std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  }
  return buf;
}

std::string count_text(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// A number in at most 4 significant digits, with k or M for thousands and millions.
std::string number_text(double v) {
  char buf[64];
  if (std::fabs(v) >= 1e6)
    std::snprintf(buf, sizeof buf, "%.4gM", v / 1e6);
  else if (std::fabs(v) >= 1e4)
    std::snprintf(buf, sizeof buf, "%.4gk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A round step (1, 2 or 5 times a power of ten) giving about n ticks over span.
double nice_step(double span, int n) {
  const double raw = span / n;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

// A step of seconds that reads well as time: seconds, then minutes, then hours.
double time_step(double span) {
  if (span <= 120) return nice_step(span, 8);
  for (double s : {30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
                   43200.0, 86400.0})
    if (span / s <= 10) return s;
  return nice_step(span, 8);
}

// The x axis of a time chart: ticks and grid lines from the run's start.
void time_axis(std::string& o, const ReportData& d, int y0, int y1) {
  const double span = d.bins * d.bin_seconds;
  const double step = time_step(span);
  for (double t = 0; t <= span * 1.0001; t += step) {
    const double x = kLeft + t / span * kPlot;
    put(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x, y0, x, y1);
    put(o, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">+%s</text>", x, y1 + 14,
        html_escape(seconds_text(t)).c_str());
  }
}

std::string json_attr(const nlohmann::json& v) {
  return html_escape(v.dump());
}

// One row of the summary table: data-key is status --json's name,
// data-value the exact JSON value (what the tests compare).
void summary_row(std::string& o, const char* key, const char* label, const nlohmann::json& value,
                 const std::string& shown, const char* note = "") {
  put(o,
      "<tr data-key=\"%s\" data-value=\"%s\"><th>%s</th><td>%s</td><td "
      "class=\"note\">%s</td></tr>\n",
      key, json_attr(value).c_str(), label, html_escape(shown).c_str(), note);
}

void summary(std::string& o, const ReportData& d) {
  const auto& j = d.status;
  auto u = [&](const char* k) { return j.value(k, std::uint64_t{0}); };
  o += "<section id=\"summary\"><h2>Summary</h2><table class=\"summary\">\n";
  summary_row(o, "run", "run", j["run"], std::to_string(j["run"].get<std::int64_t>()));
  const bool killed = j["state"] == "running" && !j["writer_alive"].get<bool>();
  summary_row(
      o, "state", "state", j["state"],
      killed ? "running or killed (no writer holds the lock)" : j["state"].get<std::string>(),
      j["state"] == "running" && !killed ? "a snapshot: the run goes on" : "");
  summary_row(o, "exit_status", "exit status", j["exit_status"],
              std::to_string(j["exit_status"].get<int>()));
  summary_row(o, "total", "tasks", j["total"], count_text(u("total")));
  summary_row(o, "done", "done", j["done"], count_text(u("done")));
  summary_row(o, "cached", "cached", j["cached"], count_text(u("cached")),
              "served from the store: no worker time");
  summary_row(o, "computed", "computed", j["computed"], count_text(u("computed")), "ok, this run");
  summary_row(o, "failed", "failed", j["failed"], count_text(u("failed")));
  summary_row(o, "pending", "pending", j["pending"], count_text(u("pending")));
  summary_row(o, "start_time", "started", j["start_time"],
              time_text(j["start_time"].get<double>()));
  summary_row(o, "end_time", "ended", j["end_time"], time_text(j["end_time"].get<double>()));
  summary_row(o, "elapsed", "wall time", j["elapsed"], seconds_text(j["elapsed"].get<double>()));
  char buf[64];
  summary_row(o, "rate", "rate", j["rate"], number_text(j["rate"].get<double>()) + " tasks/s",
              "computed / wall time");
  summary_row(o, "ranks", "ranks", j["ranks"], std::to_string(j["ranks"].get<int>()));
  summary_row(o, "workers", "workers", d.workers, std::to_string(d.workers),
              "ranks that compute (rank 0 dispatches when there are others)");
  summary_row(o, "busy_seconds", "busy time", d.busy_seconds, seconds_text(d.busy_seconds),
              "sum of the durations of this run's tasks, ok and failed");
  std::snprintf(buf, sizeof buf, "%.1f %%", 100 * d.efficiency);
  summary_row(o, "efficiency", "efficiency", d.efficiency, buf,
              "busy time / (workers &times; wall time)");
  summary_row(o, "mean_duration", "mean task", d.mean_duration, seconds_text(d.mean_duration));
  std::map<std::string, int> hosts;
  for (const auto& h : j["hosts"]) ++hosts[h.get<std::string>()];
  std::string hs;
  for (const auto& [h, n] : hosts)
    hs += (hs.empty() ? "" : ", ") + h + " (" + std::to_string(n) + ")";
  summary_row(o, "hosts", "hosts", j["hosts"], hs, "ranks on each");
  std::string job_text;
  for (const auto& jb : d.jobs) job_text += (job_text.empty() ? "" : ", ") + jb;
  summary_row(o, "jobs", "job", d.jobs, job_text.empty() ? "-" : job_text);
  std::string slurm;
  for (const auto& s : j["slurm_jobs"])
    slurm += (slurm.empty() ? "" : ", ") + s["slurm_job_id"].get<std::string>() + " (run " +
             std::to_string(s["run"].get<std::int64_t>()) + ", " + s["state"].get<std::string>() +
             ")";
  summary_row(o, "slurm_jobs", "Slurm jobs", j["slurm_jobs"], slurm.empty() ? "none" : slurm,
              "every Slurm job that ran on this store");
  o += "</table>\n";
  // Where the tasks came from, apart from the timeline: cached ones took no worker time.
  const double total = std::max<double>(1, static_cast<double>(u("total")));
  struct Part {
    const char* key;
    const char* cls;
  };
  o += "<div class=\"parts\">";
  for (const Part& p : {Part{"computed", "ok"}, Part{"cached", "cached"}, Part{"failed", "bad"},
                        Part{"pending", "pending"}}) {
    const double w = 100.0 * static_cast<double>(u(p.key)) / total;
    if (w > 0)
      put(o, "<span class=\"%s\" style=\"width:%.3f%%\" title=\"%s %s\"></span>", p.cls, w,
          count_text(u(p.key)).c_str(), p.key);
  }
  o += "</div><p class=\"legend\"><i class=\"ok\"></i>computed <i class=\"cached\"></i>cached "
       "<i class=\"bad\"></i>failed <i class=\"pending\"></i>pending</p></section>\n";
}

// Bar heights in eighths of a lane, so that equal neighbours merge into one bar.
int eighths(double fraction) {
  if (!(fraction > 0)) return 0;
  return std::clamp(static_cast<int>(std::ceil(fraction * 8 - 1e-9)), 1, 8);
}

void timeline(std::string& o, const ReportData& d) {
  const int n = static_cast<int>(d.lanes.size());
  const int lh = n <= 24 ? 24 : n <= 64 ? 16 : n <= 160 ? 8 : n <= 400 ? 4 : 2;
  const int gap = lh >= 8 ? 3 : 0;
  const int top = 8, height = n * (lh + gap);
  o += "<section id=\"timeline\"><h2>Timeline: one lane per rank</h2>"
       "<p class=\"legend\">Each bar is the share of a time slice a rank spent computing "
       "(full height: busy all of it); gaps are idle time. "
       "<i class=\"ok\"></i>ok <i class=\"bad\"></i>failed <i class=\"idle\"></i>idle. ";
  put(o, "%d slices of %s.</p>\n", d.bins, html_escape(seconds_text(d.bin_seconds)).c_str());
  // Records and counts differ when a later run retried this run's failures (its record
  // replaces theirs), `clear` removed some, or failed tasks came from the store.
  const auto counted =
      d.status.value("computed", std::uint64_t{0}) + d.status.value("failed", std::uint64_t{0});
  if (d.records != counted)
    put(o,
        "<p class=\"note\" id=\"records-note\">The store holds %s records computed by this run; "
        "status counts %s tasks computed or failed. The others were replaced by a later run "
        "(a retried failure), removed by <code>clear</code>, or are failures served from the "
        "store; the charts and tables show the records held.</p>\n",
        count_text(d.records).c_str(), count_text(counted).c_str());
  put(o, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", kWidth,
      top + height + 24, kWidth, top + height + 24);
  const int label_every = lh >= 8 ? 1 : std::max(1, 12 / lh);
  for (int i = 0; i < n; ++i) {
    const ReportLane& l = d.lanes[static_cast<std::size_t>(i)];
    const int y = top + i * (lh + gap);
    if (i % label_every == 0)
      put(o, "<text class=\"lbl\" x=\"%d\" y=\"%d\" text-anchor=\"end\">rank %d</text>", kLeft - 6,
          y + std::min(lh, 12) - 1, l.rank);
    const double span = d.bins * d.bin_seconds;
    if (lh >= 8)
      put(o, "<text class=\"lbl\" x=\"%d\" y=\"%d\">%.0f%%</text>", kLeft + kPlot + 4,
          y + std::min(lh, 12) - 1, span > 0 ? 100 * l.busy / span : 0.0);
  }
  time_axis(o, d, top, top + height);
  // The lanes in bin units across (integers), pixels down.
  put(o,
      "<svg x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "preserveAspectRatio=\"none\" shape-rendering=\"crispEdges\">",
      kLeft, top, kPlot, height, d.bins, height);
  std::string ok, bad;
  for (int i = 0; i < n; ++i) {
    const ReportLane& l = d.lanes[static_cast<std::size_t>(i)];
    const int y = i * (lh + gap);
    const double span = d.bins * d.bin_seconds;
    put(o,
        "<g class=\"lane\" data-rank=\"%d\" data-tasks=\"%llu\"><title>rank %d%s%s: %s "
        "tasks, busy %s (%.1f%%)</title>",
        l.rank, static_cast<unsigned long long>(l.tasks), l.rank, l.host.empty() ? "" : " on ",
        html_escape(l.host).c_str(), count_text(l.tasks).c_str(),
        html_escape(seconds_text(l.busy)).c_str(), span > 0 ? 100 * l.busy / span : 0.0);
    put(o, "<rect class=\"idle\" x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\"/>", y, d.bins, lh);
    ok.clear();
    bad.clear();
    int b = 0;
    while (b < d.bins) {
      const double fo = l.busy_ok[static_cast<std::size_t>(b)] / d.bin_seconds;
      const double ff = l.busy_failed[static_cast<std::size_t>(b)] / d.bin_seconds;
      const int qo = eighths(fo), qt = std::max(eighths(fo + ff), qo + (ff > 0 ? 1 : 0));
      int e = b + 1;
      while (e < d.bins) {
        const double go = l.busy_ok[static_cast<std::size_t>(e)] / d.bin_seconds;
        const double gf = l.busy_failed[static_cast<std::size_t>(e)] / d.bin_seconds;
        if (eighths(go) != qo || std::max(eighths(go + gf), eighths(go) + (gf > 0 ? 1 : 0)) != qt)
          break;
        ++e;
      }
      const double ho = lh * std::min(qo, 8) / 8.0, ht = lh * std::min(qt, 8) / 8.0;
      if (ho > 0) put(ok, "M%d %gh%dv%gh-%dz", b, y + lh - ho, e - b, ho, e - b);
      if (ht > ho) put(bad, "M%d %gh%dv%gh-%dz", b, y + lh - ht, e - b, ht - ho, e - b);
      b = e;
    }
    if (!ok.empty()) put(o, "<path class=\"ok\" d=\"%s\"/>", ok.c_str());
    if (!bad.empty()) put(o, "<path class=\"bad\" d=\"%s\"/>", bad.c_str());
    o += "</g>\n";
  }
  o += "</svg></svg></section>\n";
}

void throughput(std::string& o, const ReportData& d) {
  // Coarser slices when tasks are few, so that the line shows a rate, not single tasks.
  const std::uint64_t ended = d.records;
  const int group = std::clamp(
      static_cast<int>(
          std::ceil(5.0 * d.bins / static_cast<double>(std::max<std::uint64_t>(ended, 1)))),
      1, std::max(1, d.bins / 10));
  const int points = (d.bins + group - 1) / group;
  std::vector<double> ok(static_cast<std::size_t>(points)), bad(ok.size());
  for (int b = 0; b < d.bins; ++b) {
    ok[static_cast<std::size_t>(b / group)] +=
        static_cast<double>(d.ended_ok[static_cast<std::size_t>(b)]);
    bad[static_cast<std::size_t>(b / group)] +=
        static_cast<double>(d.ended_failed[static_cast<std::size_t>(b)]);
  }
  double top = 0;
  for (int p = 0; p < points; ++p) {
    const int width = std::min(group, d.bins - p * group);
    const double secs = width * d.bin_seconds;
    ok[static_cast<std::size_t>(p)] /= secs;
    bad[static_cast<std::size_t>(p)] /= secs;
    top = std::max({top, ok[static_cast<std::size_t>(p)], bad[static_cast<std::size_t>(p)]});
  }
  const double step = top > 0 ? nice_step(top, 4) : 1;
  const double ymax = top > 0 ? std::ceil(top / step) * step : 1;
  const int h = 180, y0 = 10;
  o += "<section id=\"throughput\"><h2>Tasks per second</h2><p class=\"legend\">Tasks of this run "
       "that ended in each time slice. <i class=\"ok\"></i>ok <i class=\"bad\"></i>failed "
       "<i class=\"mean\"></i>mean rate (status's <code>rate</code>)</p>\n";
  put(o, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", kWidth,
      y0 + h + 24, kWidth, y0 + h + 24);
  for (double v = 0; v <= ymax * 1.0001; v += step) {
    const double y = y0 + h - v / ymax * h;
    put(o, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", kLeft, y,
        kLeft + kPlot, y);
    put(o, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s/s</text>", kLeft - 6,
        y + 4, number_text(v).c_str());
  }
  time_axis(o, d, y0, y0 + h);
  put(o,
      "<svg x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d 1000\" "
      "preserveAspectRatio=\"none\">",
      kLeft, y0, kPlot, h, points);
  auto line = [&](const std::vector<double>& v, const char* cls, bool area) {
    std::string pts;
    for (int p = 0; p < points; ++p)
      put(pts, "%s%g %.0f", p ? " " : "", p + 0.5,
          1000 - v[static_cast<std::size_t>(p)] / ymax * 1000);
    if (area)
      put(o, "<polygon class=\"%s area\" points=\"0.5 1000 %s %g 1000\"/>", cls, pts.c_str(),
          points - 0.5);
    put(o, "<polyline class=\"%s line\" points=\"%s\"/>", cls, pts.c_str());
  };
  line(ok, "ok", true);
  if (d.records_failed > 0) line(bad, "bad", false);
  const double mean = d.status.value("rate", 0.0);
  if (mean > 0)
    put(o, "<line class=\"mean\" x1=\"0\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", points,
        1000 - mean / ymax * 1000, 1000 - mean / ymax * 1000);
  o += "</svg></svg></section>\n";
}

std::string decade_text(int e) {
  static const char* const kNames[] = {
      "100 ns", "1 \xC2\xB5s", "10 \xC2\xB5s", "100 \xC2\xB5s", "1 ms",   "10 ms",  "100 ms",
      "1 s",    "10 s",        "100 s",        "1000 s",        "10^4 s", "10^5 s", "10^6 s"};
  return e >= -7 && e <= 6 ? kNames[e + 7] : "10^" + std::to_string(e) + " s";
}

void histogram(std::string& o, const ReportData& d) {
  o += "<section id=\"durations\"><h2>Task durations</h2>";
  const std::size_t nb = d.hist_ok.size();
  std::size_t first = nb, last = 0;
  for (std::size_t i = 0; i < nb; ++i) {
    if (d.hist_ok[i] + d.hist_failed[i] == 0) continue;
    first = std::min(first, i);
    last = i;
  }
  if (first == nb) {
    o += "<p>No task was computed in this run.</p></section>\n";
    return;
  }
  // Whole decades, so that the axis reads 1 ms, 10 ms...
  const std::size_t per = static_cast<std::size_t>(d.hist_per_decade);
  first = first / per * per;
  last = std::min(nb - 1, (last / per + 1) * per - 1);
  std::uint64_t top = 1;
  for (std::size_t i = first; i <= last; ++i) top = std::max(top, d.hist_ok[i] + d.hist_failed[i]);
  put(o,
      "<p class=\"legend\">%d bins a decade, log scale across. Mean %s, longest %s. "
      "<i class=\"ok\"></i>ok <i class=\"bad\"></i>failed</p>\n",
      d.hist_per_decade, html_escape(seconds_text(d.mean_duration)).c_str(),
      html_escape(seconds_text(d.max_duration)).c_str());
  const int h = 160, y0 = 10;
  put(o, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", kWidth,
      y0 + h + 24, kWidth, y0 + h + 24);
  put(o, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", kLeft - 6, y0 + 10,
      count_text(top).c_str());
  put(o, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>", kLeft - 6, y0 + h);
  const double w = static_cast<double>(kPlot) / static_cast<double>(last - first + 1);
  for (std::size_t i = first; i <= last; ++i) {
    const double x = kLeft + static_cast<double>(i - first) * w;
    if ((i - first) % per == 0) {
      const int e = static_cast<int>(d.hist_lo) + static_cast<int>(i / per);
      put(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x, y0, x,
          y0 + h);
      put(o, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", x,
          y0 + h + 14, decade_text(e).c_str());
    }
    const double ho = static_cast<double>(d.hist_ok[i]) / static_cast<double>(top) * h;
    const double hf = static_cast<double>(d.hist_failed[i]) / static_cast<double>(top) * h;
    if (d.hist_ok[i] + d.hist_failed[i] == 0) continue;
    put(o, "<g><title>%s tasks ok, %s failed</title>", count_text(d.hist_ok[i]).c_str(),
        count_text(d.hist_failed[i]).c_str());
    if (ho > 0)
      put(o, "<rect class=\"ok\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", x + 1,
          y0 + h - std::max(ho, 1.0), w - 2, std::max(ho, 1.0));
    if (hf > 0)
      put(o, "<rect class=\"bad\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", x + 1,
          y0 + h - ho - std::max(hf, 1.0), w - 2, std::max(hf, 1.0));
    o += "</g>";
  }
  // The range's right end, a whole decade too.
  put(o, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", kLeft + kPlot,
      y0 + h + 14,
      decade_text(static_cast<int>(d.hist_lo) + static_cast<int>((last + 1) / per)).c_str());
  o += "</svg></section>\n";
}

void task_table(std::string& o, const ReportData& d, const std::vector<ReportTask>& rows,
                bool errors) {
  o += "<table class=\"tasks\"><tr><th>duration</th><th>rank</th><th>started</th><th>status</th>"
       "<th>params</th>";
  o += errors ? "<th>message</th></tr>\n" : "</tr>\n";
  for (const auto& t : rows) {
    put(o,
        "<tr><td class=\"num\">%s</td><td class=\"num\">%d</td><td class=\"num\">+%s</td>"
        "<td class=\"%s\">%s</td><td><code>%s</code></td>",
        html_escape(seconds_text(t.duration)).c_str(), t.rank,
        html_escape(seconds_text(std::max(0.0, t.start_time - d.t0))).c_str(),
        t.failed ? "badtext" : "", t.failed ? "failed" : "ok", html_escape(t.params).c_str());
    if (errors) put(o, "<td><pre>%s</pre></td>", html_escape(t.error).c_str());
    o += "</tr>\n";
  }
  o += "</table>\n";
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1d232a;background:#fff;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #dde2e8;padding-bottom:3px}
.sub{color:#555;margin:2px 0}code,pre{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-width:520px}
table{border-collapse:collapse}th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
table.summary th{font-weight:600;white-space:nowrap}table.summary td.note{color:#777;font-size:12px}
table.tasks{font-size:13px}table.tasks tr:nth-child(even){background:#f5f7fa}table.tasks th{border-bottom:1px solid #ccd}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.badtext{color:#c62828}.legend{color:#555;font-size:12px;margin:2px 0 6px}
.legend i{display:inline-block;width:11px;height:11px;margin:0 3px 0 8px;vertical-align:-1px;border-radius:2px}
i.ok,.parts .ok{background:#1f6fb2}i.bad,.parts .bad{background:#d32f2f}i.cached,.parts .cached{background:#43a047}
i.pending,.parts .pending{background:#b0bec5}i.idle{background:#eceff3}i.mean{background:#ef8f00;height:3px}
.parts{display:flex;height:16px;width:960px;border-radius:3px;overflow:hidden;background:#eceff3;margin-top:12px}
.parts span{display:block;height:100%}
svg.chart{display:block;font-size:11px}svg .lbl,svg .tick{fill:#444}svg .grid{stroke:#e3e7ec;stroke-width:1}
svg .idle{fill:#eceff3}svg path.ok,svg rect.ok{fill:#1f6fb2}svg path.bad,svg rect.bad{fill:#d32f2f}
svg .line{fill:none;stroke-width:1.5;vector-effect:non-scaling-stroke}svg .line.ok{stroke:#1f6fb2}svg .line.bad{stroke:#d32f2f}
svg .area.ok{fill:#1f6fb2;fill-opacity:.15}svg .mean{stroke:#ef8f00;stroke-width:1.5;stroke-dasharray:6 4;vector-effect:non-scaling-stroke}
p.note{background:#fff8e1;border-left:3px solid #ef8f00;padding:4px 8px;font-size:13px}
footer{margin-top:32px;color:#888;font-size:12px}
)";

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_report_html(const ReportData& d) {
  std::string o;
  o.reserve(1 << 20);
  const auto& j = d.status;
  const std::string title =
      "Run " + std::to_string(j["run"].get<std::int64_t>()) + " of " + d.store;
  o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"generator\" content=\"mpibatch " MPIBATCH_VERSION "\">";
  put(o, "<title>mpibatch report: %s</title><style>%s</style></head><body>\n",
      html_escape(title).c_str(), kStyle);
  put(o, "<h1>%s</h1>\n", html_escape(title).c_str());
  put(o, "<p class=\"sub\"><code>%s</code></p>\n",
      html_escape(j["command_line"].get<std::string>()).c_str());
  put(o, "<p class=\"sub\">%s, started %s, wall time %s, %d ranks%s%s</p>\n",
      html_escape(j["state"].get<std::string>()).c_str(),
      time_text(j["start_time"].get<double>()).c_str(),
      html_escape(seconds_text(j["elapsed"].get<double>())).c_str(), j["ranks"].get<int>(),
      j["slurm_job_id"].get<std::string>().empty() ? "" : ", Slurm job ",
      html_escape(j["slurm_job_id"].get<std::string>()).c_str());
  summary(o, d);
  timeline(o, d);
  throughput(o, d);
  histogram(o, d);
  put(o, "<section id=\"slowest\"><h2>The %zu slowest tasks</h2>\n", d.slowest.size());
  for (const auto& [job, text] : d.constant_params)
    put(o, "<p class=\"legend\">Every task of %s had <code>%s</code> (not repeated below).</p>\n",
        html_escape(job).c_str(), html_escape(text).c_str());
  if (d.slowest.empty())
    o += "<p>None computed in this run.</p>";
  else
    task_table(o, d, d.slowest, false);
  o += "</section>\n<section id=\"failed\"><h2>Failed tasks</h2>\n";
  if (d.records_failed == 0) {
    o += d.status.value("failed", std::uint64_t{0}) == 0
             ? "<p>None failed in this run.</p>"
             : "<p>No failed record of this run is left in the store (see above).</p>";
  } else {
    put(o,
        "<p>%s failed in this run (each after its retries). Their messages, most frequent first "
        "(first line):</p>\n<table class=\"tasks\"><tr><th>tasks</th><th>message</th></tr>\n",
        count_text(d.records_failed).c_str());
    std::vector<std::pair<std::uint64_t, std::string>> by_count;
    for (const auto& [m, n] : d.messages) by_count.emplace_back(n, m);
    std::sort(by_count.begin(), by_count.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; i < by_count.size() && i < 20; ++i)
      put(o, "<tr><td class=\"num\">%s</td><td><pre>%s</pre></td></tr>\n",
          count_text(by_count[i].first).c_str(), html_escape(by_count[i].second).c_str());
    put(o, "</table>\n<p>The first %zu, in the order they started:</p>\n", d.failed.size());
    task_table(o, d, d.failed, true);
  }
  o += "</section>\n";
  // The figures again for programs, under status --json's names; '<' only occurs in JSON
  // strings, where \u003c keeps "</script>" or "<!--" in a command line from ending the element.
  nlohmann::json figures = j;
  figures["workers"] = d.workers;
  figures["busy_seconds"] = d.busy_seconds;
  figures["efficiency"] = d.efficiency;
  std::string data;
  for (char c : figures.dump()) data += c == '<' ? std::string("\\u003c") : std::string(1, c);
  put(o, "<script type=\"application/json\" id=\"mpibatch-status\">%s</script>\n", data.c_str());
  put(o, "<footer>mpibatch %s report of %s, written %s; %s records of this run read.</footer>\n",
      MPIBATCH_VERSION, html_escape(d.store).c_str(), time_text(now_unix()).c_str(),
      count_text(d.records).c_str());
  o += "</body></html>\n";
  return o;
}

}  // namespace mpibatch::detail
