// Streams generated text while watching for stop strings (OpenAI `stop`): text that could still
// be the start of a stop string is held back, and the output ends just before a stop string,
// which itself is never emitted.
//
//   StopStringMatcher m({"\n\n", "END"});
//   std::string out = m.Push(piece);   // safe to show now
//   if (m.stopped()) ...
//   out += m.Flush();                  // at the end, whatever was held back
// Thread-safety: one per sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace longview {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Appends generated text; returns the text now safe to emit. After a stop string is found,
  // returns the text before it and stopped() turns true; later calls return "".
  std::string Push(std::string_view text);
  // Returns held-back text (call when generation ends for another reason).
  std::string Flush();
  bool stopped() const { return stopped_; }
  // The stop string that matched, or empty.
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace longview
