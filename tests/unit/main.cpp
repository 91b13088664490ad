// Catch2 main for the unit tests. GCC 12 with -fsanitize=address,undefined
// -O2 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex>
// (pulled in by Catch's runner), which -Werror would turn into a build
// failure of the sanitizer build; silence just that warning here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
