# Warning flags live in one INTERFACE target that every project target links.
add_library(loyalty_warnings INTERFACE)
# -Werror=switch: a switch over one of the project's enums (operations,
# entry kinds, error codes) has no `default:`, so a new member that a switch
# misses stops the build there (docs/ARCHITECTURE.md, "Operations").
target_compile_options(loyalty_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers
                                                  -Werror=switch)
if(LOYALTY_SANITIZE)
  target_compile_options(loyalty_warnings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(loyalty_warnings INTERFACE -fsanitize=address,undefined)
endif()
if(LOYALTY_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "LOYALTY_FUZZ needs clang (CC=clang CXX=clang++): libFuzzer is part of it")
  endif()
  # Coverage for libFuzzer in every project library (the fuzz targets add
  # libFuzzer itself); undefined behaviour stops the run like a crash does.
  target_compile_options(loyalty_warnings INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                    -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(loyalty_warnings INTERFACE -fsanitize=address,undefined)
endif()
