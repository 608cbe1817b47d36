#include "engine/text/internal/bpe_model.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/text/internal/byte_level.h"
#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<BpeModel> BpeModel::Build(
    const std::vector<std::pair<std::string, int32_t>>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges,
    const BpeModelOptions& options) {
  BpeModel model;
  model.options_ = options;
  absl::flat_hash_map<std::string, int32_t> by_text;  // the vocabulary's own spelling
  by_text.reserve(vocab.size());
  model.vocab_.reserve(vocab.size());
  absl::flat_hash_map<int32_t, bool> seen_ids;
  for (const auto& [text, id] : vocab) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("negative token id ", id));
    if (!seen_ids.emplace(id, true).second) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " appears twice"));
    }
    by_text[text] = id;
    if (!options.byte_level) {
      model.vocab_[text] = id;
    } else {
      // A text with characters outside GPT-2's map can never be spelled by bytes: no key.
      std::string bytes;
      if (ByteLevelDecodeStrict(text, &bytes)) model.vocab_[bytes] = id;
    }
  }
  std::fill(std::begin(model.byte_ids_), std::end(model.byte_ids_), -1);
  std::fill(std::begin(model.fallback_ids_), std::end(model.fallback_ids_), -1);
  for (int b = 0; b < 256; ++b) {
    if (options.byte_level) {
      auto it = model.vocab_.find(AsAbsl(std::string(1, static_cast<char>(b))));
      if (it != model.vocab_.end()) model.byte_ids_[b] = it->second;
    }
    auto it = by_text.find(absl::StrFormat("<0x%02X>", b));
    if (it != by_text.end()) model.fallback_ids_[b] = it->second;
  }
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = by_text.find(a);
    auto ib = by_text.find(b);
    auto inew = by_text.find(a + b);
    if (ia == by_text.end() || ib == by_text.end() || inew == by_text.end()) continue;
    // A repeated pair takes its last rank, as tokenizers' map built from the list does.
    model.merges_[PairKey(ia->second, ib->second)] = {static_cast<int32_t>(rank), inew->second};
  }
  return model;
}

int32_t BpeModel::TokenId(std::string_view key) const {
  auto it = vocab_.find(AsAbsl(key));
  return it == vocab_.end() ? -1 : it->second;
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t a, int32_t b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<Symbol>* symbols) const {
  bool unk_pending = false;
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols->size());
    if (n > 0) symbols->back().next = n;
    symbols->push_back({id, n - 1, -1, false});
  };
  size_t pos = 0;
  std::string spelled;  // the unit as the vocabulary spells it, for byte fallback
  while (pos < word.size()) {
    size_t len;
    int32_t id;
    if (options_.byte_level) {
      len = 1;
      id = byte_ids_[static_cast<unsigned char>(word[pos])];
    } else {
      len = NextUtf8(word.substr(pos)).len;
      id = TokenId(word.substr(pos, len));
    }
    if (id >= 0) {
      if (unk_pending) add(options_.unk_id);
      unk_pending = false;
      add(id);
      pos += len;
      continue;
    }
    if (options_.byte_fallback) {
      spelled.clear();
      if (options_.byte_level) {
        AppendUtf8(ByteToChar(static_cast<unsigned char>(word[pos])), &spelled);
      } else {
        spelled.assign(word.substr(pos, len));
      }
      bool all = true;
      for (char c : spelled) all = all && fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // tokenizers adds these without first adding a pending <unk>.
        for (char c : spelled) add(fallback_ids_[static_cast<unsigned char>(c)]);
        pos += len;
        continue;
      }
    }
    if (options_.unk_id >= 0) {
      if (unk_pending && !options_.fuse_unk) add(options_.unk_id);
      unk_pending = true;
    }
    pos += len;
  }
  if (unk_pending) add(options_.unk_id);
}

void BpeModel::MergeAll(std::vector<Symbol>* symbols) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  // A min-heap on (rank, pos): the lowest rank first, the leftmost among equals.
  auto later = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::vector<Symbol>& s = *symbols;
  absl::InlinedVector<Candidate, 32> heap;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (const Merge* m = FindMerge(s[i].id, s[i + 1].id)) {
      heap.push_back({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = s[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = s[left.next];
    // A stale entry: the pair at this position changed since it was queued.
    const Merge* now = FindMerge(left.id, right.id);
    if (now == nullptr || now->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.next = right.next;
    right.removed = true;
    if (right.next >= 0) s[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* m = FindMerge(s[left.prev].id, left.id)) {
        heap.push_back({m->rank, left.prev, m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (left.next >= 0) {
      if (const Merge* m = FindMerge(left.id, s[left.next].id)) {
        heap.push_back({m->rank, top.pos, m->new_id});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
  }
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    const int32_t id = TokenId(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  InitialSymbols(word, &symbols);
  MergeAll(&symbols);
  for (const Symbol& sym : symbols) {
    if (!sym.removed) ids->push_back(sym.id);
  }
}

}  // namespace longview::internal
