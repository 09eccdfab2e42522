// Metrics (see metrics.h for the definitions each follows).
#include "retort/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include <utf8proc.h>

#include "retort/error.h"
#include "retort/tasks.h"
#include "text/unicode.h"

namespace retort {
namespace {

template <typename A, typename B>
void check_sizes(const std::vector<A>& a, const std::vector<B>& b, const char* what) {
  check(!a.empty(), what, ": no predictions");
  check(a.size() == b.size(), what, ": ", a.size(), " predictions for ", b.size(), " references");
}

// Python's \w for one code point: letters, numbers, underscore.
bool is_word_char(char32_t c) {
  if (c == U'_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_ascii_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

// Normalized answer as words (the script's final " ".join(text.split()) gives them back joined).
std::vector<std::u32string> normalized_words(const std::string& s) {
  std::vector<char32_t> cps;
  text::decode_utf8(s, cps, "answer");
  std::vector<text::AlignedChar> in, lower;
  in.reserve(cps.size());
  for (char32_t c : cps) in.push_back({c, 0});
  text::lowercase(in.data(), in.size(), lower);
  std::u32string t;
  for (const auto& a : lower) {
    if (!is_ascii_punct(a.cp)) t += a.cp;
  }
  // remove_articles: re.sub(r"\b(a|an|the)\b", " ", text) -- a maximal word-character run equal to
  // an article is replaced by a space.
  std::u32string u;
  for (size_t i = 0; i < t.size();) {
    if (!is_word_char(t[i])) {
      u += t[i++];
      continue;
    }
    size_t j = i;
    while (j < t.size() && is_word_char(t[j])) ++j;
    std::u32string w = t.substr(i, j - i);
    u += (w == U"a" || w == U"an" || w == U"the") ? std::u32string(U" ") : w;
    i = j;
  }
  std::vector<std::u32string> words;
  std::u32string cur;
  for (char32_t c : u) {
    if (text::is_whitespace(c)) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "accuracy");
  size_t same = 0;
  for (size_t i = 0; i < labels.size(); ++i) same += predictions[i] == labels[i];
  return static_cast<double>(same) / static_cast<double>(labels.size());
}

double binary_f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "f1");
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool p = predictions[i] == 1, l = labels[i] == 1;
    tp += p && l;
    fp += p && !l;
    fn += !p && l;
  }
  return tp + fp + fn == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "mcc");
  std::unordered_map<int64_t, double> t_k, p_k;  // true and predicted counts per class
  double correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    t_k[labels[i]] += 1;
    p_k[predictions[i]] += 1;
    correct += predictions[i] == labels[i];
  }
  const double s = static_cast<double>(labels.size());
  double pt = 0, pp = 0, tt = 0;
  for (const auto& [k, p] : p_k) {
    pp += p * p;
    auto it = t_k.find(k);
    if (it != t_k.end()) pt += p * it->second;
  }
  for (const auto& kv : t_k) tt += kv.second * kv.second;
  const double cov_ytyp = correct * s - pt, cov_ypyp = s * s - pp, cov_ytyt = s * s - tt;
  if (cov_ypyp * cov_ytyt == 0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "pearson");
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  auto constant = [](const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [&](double a) { return a == v.front(); });
  };
  if (constant(x) || constant(y)) return std::numeric_limits<double>::quiet_NaN();  // as scipy decides it
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double r = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = r;
    i = j + 1;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  return pearson(average_ranks(x), average_ranks(y));
}

std::string squad_normalize(const std::string& s) {
  std::string out;
  for (const auto& w : normalized_words(s)) {
    if (!out.empty()) out += ' ';
    for (char32_t c : w) text::append_utf8(c, out);
  }
  return out;
}

double squad_exact(const std::string& prediction, const std::string& truth) {
  return squad_normalize(prediction) == squad_normalize(truth) ? 1.0 : 0.0;
}

double squad_f1(const std::string& prediction, const std::string& truth, bool v2) {
  const auto p = normalized_words(prediction), t = normalized_words(truth);
  if (v2 && (p.empty() || t.empty())) return p == t ? 1.0 : 0.0;
  std::unordered_map<std::u32string, int> counts;
  for (const auto& w : t) ++counts[w];
  int same = 0;
  for (const auto& w : p) {
    auto it = counts.find(w);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / p.size(), recall = static_cast<double>(same) / t.size();
  return 2 * precision * recall / (precision + recall);
}

double squad_max_over_truths(bool f1, const std::string& prediction, const std::vector<std::string>& all_truths,
                             bool v2) {
  std::vector<std::string> truths;
  for (const auto& t : all_truths) {
    if (!v2 || !squad_normalize(t).empty()) truths.push_back(t);  // v2.0 drops answers that normalize to ""
  }
  if (truths.empty()) return f1 ? squad_f1(prediction, "", v2) : squad_exact(prediction, "");
  double best = 0;
  for (const auto& t : truths) best = std::max(best, f1 ? squad_f1(prediction, t, v2) : squad_exact(prediction, t));
  return best;
}

std::map<std::string, double> task_metrics(const TaskSpec& spec, const std::vector<int64_t>& predicted_labels,
                                           const std::vector<int64_t>& labels,
                                           const std::vector<double>& predicted_scores,
                                           const std::vector<double>& scores) {
  std::map<std::string, double> m;
  for (const auto& name : spec.metrics) {
    if (name == "accuracy") {
      m[name] = accuracy(predicted_labels, labels);
    } else if (name == "f1") {
      m[name] = binary_f1(predicted_labels, labels);
    } else if (name == "mcc") {
      m[name] = matthews_corrcoef(predicted_labels, labels);
    } else if (name == "pearson") {
      m[name] = pearson(predicted_scores, scores);
    } else if (name == "spearman") {
      m[name] = spearman(predicted_scores, scores);
    } else {
      fail("task ", spec.name, ": metric '", name, "' is not computed from labels or scores");
    }
  }
  return m;
}

double task_score(const TaskSpec& spec, const std::map<std::string, double>& metrics) {
  check(!spec.metrics.empty(), "task ", spec.name, " has no metrics");
  double sum = 0;
  for (const auto& name : spec.metrics) {
    auto it = metrics.find(name);
    check(it != metrics.end(), "task ", spec.name, ": metric '", name, "' missing from the results");
    sum += std::isnan(it->second) ? 0.0 : it->second;  // a constant prediction correlates with nothing
  }
  return sum / static_cast<double>(spec.metrics.size());
}

double macro_score(const std::vector<double>& task_scores) {
  check(!task_scores.empty(), "macro score: no task scores");
  return std::accumulate(task_scores.begin(), task_scores.end(), 0.0) / static_cast<double>(task_scores.size());
}

}  // namespace retort
