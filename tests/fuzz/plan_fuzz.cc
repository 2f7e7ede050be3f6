// Plan files: any bytes give a Plan whose order lists every task once, or an error that names
// the file.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "policy/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto plan = corral::policy::ParsePlan(text, "plan.toml");
  if (!plan) {
    if (!plan.error().starts_with("plan.toml")) std::abort();
    return 0;
  }
  std::set<size_t> seen(plan->order.begin(), plan->order.end());
  if (seen.size() != plan->tasks.size() || plan->order.size() != plan->tasks.size()) std::abort();
  return 0;
}
