#include "launcher/redact.h"

#include <algorithm>

namespace corral::launcher {

Redactor::Redactor(std::vector<std::pair<std::string, std::string>> secrets) {
  for (auto& [name, value] : secrets) {
    if (value.empty()) continue;
    longest_ = std::max(longest_, value.size());
    secrets_.emplace_back(std::move(name), std::move(value));
  }
  // Longest first: a value that contains another is replaced whole.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
}

bool Redactor::Find(std::string_view text, std::string* name) const {
  for (const auto& [n, value] : secrets_) {
    if (text.find(value) != std::string_view::npos) {
      if (name) *name = n;
      return true;
    }
  }
  return false;
}

size_t Redactor::Replace(std::string* text) const {
  size_t clean_from = 0;
  std::string out;
  size_t pos = 0;
  while (pos < text->size()) {
    // The earliest match of any value; on a tie, the longest (listed first).
    size_t best = std::string::npos;
    const std::pair<std::string, std::string>* hit = nullptr;
    for (const auto& s : secrets_) {
      size_t at = text->find(s.second, pos);
      if (at < best) {
        best = at;
        hit = &s;
      }
    }
    if (!hit) break;
    out.append(*text, pos, best - pos);
    out += "[REDACTED:" + hit->first + "]";
    pos = best + hit->second.size();
    clean_from = out.size();
  }
  if (clean_from == 0 && pos == 0) return 0;
  out.append(*text, pos, std::string::npos);
  *text = std::move(out);
  return clean_from;
}

std::string Redactor::Apply(std::string_view text) const {
  std::string out(text);
  if (!secrets_.empty()) Replace(&out);
  return out;
}

void Redactor::Apply(nlohmann::json* j) const {
  if (secrets_.empty()) return;
  if (j->is_string()) {
    std::string& s = j->get_ref<std::string&>();
    if (Find(s)) Replace(&s);
  } else if (j->is_array()) {
    for (auto& v : *j) Apply(&v);
  } else if (j->is_object()) {
    nlohmann::json copy = nlohmann::json::object();
    for (auto& [key, value] : j->items()) {
      nlohmann::json v = value;
      Apply(&v);
      copy[Apply(key)] = std::move(v);
    }
    *j = std::move(copy);
  }
}

std::string Redactor::Stream::Feed(std::string_view chunk) {
  pending_.append(chunk);
  if (r_->secrets_.empty()) return std::exchange(pending_, "");
  size_t clean_from = r_->Replace(&pending_);
  // Hold back what could still grow into a value: at most longest-1 bytes, never a replacement.
  size_t keep = std::min(pending_.size() - clean_from, r_->longest_ - 1);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Redactor::Stream::Flush() {
  r_->Replace(&pending_);
  return std::exchange(pending_, "");
}

}  // namespace corral::launcher
