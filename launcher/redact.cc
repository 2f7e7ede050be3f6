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

size_t Redactor::Replace(std::string_view text, size_t limit, std::string* out) const {
  size_t pos = 0;
  while (true) {
    // The earliest match of any value; on a tie, the longest (listed first).
    size_t best = std::string_view::npos;
    const std::pair<std::string, std::string>* hit = nullptr;
    for (const auto& s : secrets_) {
      size_t at = text.find(s.second, pos);
      if (at < best) {
        best = at;
        hit = &s;
      }
    }
    if (!hit || best >= limit) break;
    out->append(text.substr(pos, best - pos));
    *out += "[REDACTED:" + hit->first + "]";
    pos = best + hit->second.size();
  }
  size_t end = std::max(pos, std::min(limit, text.size()));
  out->append(text.substr(pos, end - pos));
  return end;
}

std::string Redactor::Apply(std::string_view text) const {
  std::string out;
  Replace(text, text.size(), &out);
  return out;
}

void Redactor::Apply(nlohmann::json* j) const {
  if (secrets_.empty()) return;
  if (j->is_string()) {
    std::string& s = j->get_ref<std::string&>();
    if (Find(s)) s = Apply(s);
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
  // A value starting before `safe` lies wholly in what is here, so matches there are final;
  // one starting later may still grow, or lose to a longer value that starts earlier.
  size_t hold = r_->longest_ - 1;
  size_t safe = pending_.size() > hold ? pending_.size() - hold : 0;
  std::string out;
  size_t used = r_->Replace(pending_, safe, &out);
  pending_.erase(0, used);
  return out;
}

std::string Redactor::Stream::Flush() {
  std::string out = r_->Apply(pending_);
  pending_.clear();
  return out;
}

}  // namespace corral::launcher
