#include "launcher/progress.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace corral::launcher {
namespace {

bool IsFinalState(const std::string& s) {
  return s != "pending" && s != "running" && s != "backoff" && s != "awaiting-approval";
}

std::string Elapsed(std::chrono::steady_clock::duration d) {
  double s = std::chrono::duration<double>(d).count();
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.1fs", s);
  } else {
    auto whole = static_cast<long>(s);
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", whole / 60, whole % 60);
  }
  return buf;
}

// The first `width` characters (code points) of UTF-8 `s`.
std::string Fit(const std::string& s, size_t width) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (chars++ == width) return s.substr(0, i);
  }
  return s;
}

std::string Pad(const std::string& s, size_t width) {
  std::string out = Fit(s, width);
  size_t chars = 0;
  for (unsigned char c : out) chars += (c & 0xC0) != 0x80;
  return out + std::string(width - std::min(width, chars), ' ');
}

// Length of the valid UTF-8 sequence at `s[i]`, or 0.
size_t Utf8Length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;  // overlong
  // C1 controls (U+0080..U+009F) act on terminals too.
  if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) return 0;
  return n;
}

}  // namespace

ProgressTable::ProgressTable(std::vector<std::string> ids) {
  for (std::string& id : ids) rows_.push_back(Row{std::move(id), "pending", "", 0, {}, {}});
}

void ProgressTable::Set(size_t task, const std::string& state, int tries, Clock::time_point now) {
  Row& r = rows_.at(task);
  r.state = state;
  r.tries = tries;
  if (state == "running") {
    if (!r.started) r.started = now;
    r.ended.reset();
  } else if (IsFinalState(state) && r.started && !r.ended) {
    r.ended = now;
  }
}

void ProgressTable::SetLastLine(size_t task, std::string line) {
  rows_.at(task).last_line = std::move(line);
}

bool ProgressTable::Running(size_t task) const { return rows_.at(task).state == "running"; }

std::vector<std::string> ProgressTable::Render(Clock::time_point now, size_t width,
                                               size_t height) const {
  size_t id_width = 4;
  for (const Row& r : rows_) id_width = std::max(id_width, std::min<size_t>(r.id.size(), 24));
  auto line = [&](const std::string& id, const std::string& state, const std::string& elapsed,
                  const std::string& tries, const std::string& last) {
    std::string l = Pad(id, id_width) + "  " + Pad(state, 17) + "  " +
                    std::string(8 - std::min<size_t>(8, elapsed.size()), ' ') + elapsed + "  " +
                    std::string(5 - std::min<size_t>(5, tries.size()), ' ') + tries + "  " + last;
    while (!l.empty() && l.back() == ' ') l.pop_back();
    return Fit(l, width > 1 ? width - 1 : width);  // the last column would wrap on some terminals
  };

  // Which rows fit: running and waiting ones first, then the most recently ended, then pending.
  std::vector<size_t> order(rows_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto rank = [&](const Row& r) {
    if (r.state == "running") return 0;
    if (r.state == "backoff" || r.state == "awaiting-approval") return 1;
    if (r.ended) return 2;
    return IsFinalState(r.state) ? 3 : 4;
  };
  size_t room = height > 2 ? height - 2 : 0;  // header and summary
  std::vector<size_t> shown = order;
  if (rows_.size() > room) {
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      int ra = rank(rows_[a]), rb = rank(rows_[b]);
      if (ra != rb) return ra < rb;
      if (ra == 2) return *rows_[a].ended > *rows_[b].ended;
      return false;
    });
    size_t keep = room > 0 ? room - 1 : 0;  // one line says how many more there are
    shown.assign(order.begin(), order.begin() + std::min(keep, order.size()));
    std::sort(shown.begin(), shown.end());  // plan order on screen
  }

  std::vector<std::string> out = {line("TASK", "STATE", "ELAPSED", "TRIES", "LAST OUTPUT")};
  for (size_t i : shown) {
    const Row& r = rows_[i];
    std::string elapsed = r.started ? Elapsed((r.ended ? *r.ended : now) - *r.started) : "-";
    out.push_back(line(r.id, r.state, elapsed, r.tries ? std::to_string(r.tries) : "-",
                       r.last_line));
  }
  if (shown.size() < rows_.size()) {
    out.push_back(Fit("... " + std::to_string(rows_.size() - shown.size()) + " more", width));
  }
  std::map<std::string, size_t> counts;
  for (const Row& r : rows_) ++counts[r.state];
  std::string summary = std::to_string(rows_.size()) + " tasks:";
  const char* states[] = {"running",   "backoff",   "awaiting-approval", "pending",  "succeeded",
                          "no-changes", "failed",   "timed-out",         "conflicted", "skipped"};
  bool first = true;
  for (const char* s : states) {
    auto it = counts.find(s);
    if (it == counts.end()) continue;
    summary += std::string(first ? " " : ", ") + std::to_string(it->second) + " " + s;
    first = false;
  }
  out.push_back(Fit(summary, width > 1 ? width - 1 : width));
  return out;
}

std::string LastLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  size_t cut = text.find_last_of("\n\r");  // after a carriage return: what a progress bar shows
  if (cut != std::string_view::npos) text.remove_prefix(cut + 1);
  std::string out;
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == 0x1B) {  // an escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), or two bytes
      ++i;
      if (i < text.size() && text[i] == '[') {
        ++i;
        while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7E)) ++i;
        ++i;
      } else if (i < text.size() && text[i] == ']') {
        while (i < text.size() && text[i] != '\a' && !(text[i] == '\\' && text[i - 1] == 0x1B)) ++i;
        ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\t') {
      out += ' ';
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      ++i;
      continue;
    }
    size_t n = Utf8Length(text, i);
    if (n == 0) {
      out += '?';
      ++i;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

bool IsTerminal(int fd) { return isatty(fd) == 1; }

LiveTable::LiveTable(int fd, std::vector<std::string> ids, std::string log_dir,
                     std::chrono::milliseconds period)
    : fd_(fd), log_dir_(std::move(log_dir)), period_(period), table_(std::move(ids)) {
  thread_ = std::thread([this] { Loop(); });
}

LiveTable::~LiveTable() { Stop(); }

void LiveTable::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  DrawLocked();  // the final states
}

void LiveTable::Set(size_t task, const std::string& state, int tries) {
  std::lock_guard lock(mu_);
  table_.Set(task, state, tries, ProgressTable::Clock::now());
}

void LiveTable::Print(const std::string& text) {
  std::lock_guard lock(mu_);
  if (!asking_) EraseLocked();
  std::string out = text + "\n";
  (void)!write(fd_, out.data(), out.size());
  if (asking_) {
    drawn_ += 1;
  } else {
    drawn_ = 0;
    DrawLocked();
  }
}

std::optional<bool> LiveTable::Ask(const std::string& question, int in_fd) {
  {
    std::lock_guard lock(mu_);
    DrawLocked();
    asking_ = true;
    // On one line (the frame's arithmetic counts it as one): cut to the terminal's width.
    winsize ws{};
    size_t width = ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
    std::string out = question;
    const std::string ask = " [y/N] ";
    size_t room = width - 1 - ask.size();
    if (out.size() > room) out = out.substr(0, room - 3) + "...";
    out += ask;
    (void)!write(fd_, out.data(), out.size());
  }
  std::string answer;
  bool ended = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
    }
    pollfd p{in_fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    ssize_t n = read(in_fd, buf, sizeof(buf));
    if (n <= 0) {
      ended = true;
      break;
    }
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find('\n') != std::string::npos) break;
  }
  std::lock_guard lock(mu_);
  asking_ = false;
  bool answered = answer.find('\n') != std::string::npos;
  if (!answered) (void)!write(fd_, "\n", 1);
  drawn_ += 1;  // the question's line, ended by the person's Enter (or by us)
  DrawLocked();
  if (!answered && (ended || stop_)) return std::nullopt;
  answer = answer.substr(0, answer.find('\n'));
  answer.erase(0, answer.find_first_not_of(" \t"));
  return !answer.empty() && (answer[0] == 'y' || answer[0] == 'Y');
}

void LiveTable::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period_);
    if (stop_ || asking_) continue;
    // Each running task's last line, from the tail of its (redacted) log.
    for (size_t t = 0; t < table_.size(); ++t) {
      if (!table_.Running(t)) continue;
      int fd = open((log_dir_ + "/" + table_.id(t) + ".log").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char tail[2048];
      off_t end = lseek(fd, 0, SEEK_END);
      ssize_t n = pread(fd, tail, sizeof(tail), std::max<off_t>(0, end - off_t{sizeof(tail)}));
      close(fd);
      if (n > 0) table_.SetLastLine(t, LastLine(std::string_view(tail, static_cast<size_t>(n))));
    }
    DrawLocked();
  }
}

void LiveTable::EraseLocked() {
  if (drawn_ == 0) return;
  std::string out = "\r\x1b[" + std::to_string(drawn_) + "A\x1b[J";
  (void)!write(fd_, out.data(), out.size());
  drawn_ = 0;
}

void LiveTable::DrawLocked() {
  winsize ws{};
  size_t width = 100, height = 25;
  if (ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    width = ws.ws_col;
    height = ws.ws_row;
  }
  std::vector<std::string> lines =
      table_.Render(ProgressTable::Clock::now(), width, std::max<size_t>(height - 1, 4));
  std::string out;
  if (drawn_ > 0) out = "\r\x1b[" + std::to_string(drawn_) + "A\x1b[J";
  for (const std::string& l : lines) out += l + "\n";
  (void)!write(fd_, out.data(), out.size());
  drawn_ = lines.size();
}

}  // namespace corral::launcher
