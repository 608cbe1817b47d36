#pragma once

// LV_ASAN is defined in AddressSanitizer builds: gcc defines __SANITIZE_ADDRESS__, clang has the
// feature test (the fuzz build is clang's).
#if defined(__SANITIZE_ADDRESS__)
#define LV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LV_ASAN 1
#endif
#endif
