#include "kvcache/block_location.h"

namespace longview {

const char* KvTierName(KvTier tier) {
  switch (tier) {
    case KvTier::kNone:
      return "none";
    case KvTier::kDevice:
      return "device";
    case KvTier::kHost:
      return "host";
    case KvTier::kDisk:
      return "disk";
  }
  return "none";
}

}  // namespace longview
