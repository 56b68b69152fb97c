# Warning flags live in one INTERFACE target that every project target links.
add_library(loyalty_warnings INTERFACE)
target_compile_options(loyalty_warnings INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
if(LOYALTY_SANITIZE)
  target_compile_options(loyalty_warnings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(loyalty_warnings INTERFACE -fsanitize=address,undefined)
endif()
