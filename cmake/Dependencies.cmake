# Every external dependency is found here, from Debian packages only
# (scripts/setup.sh installs them). Nothing is downloaded at build time.
find_package(Threads REQUIRED)
# libmsgpack-cxx-dev installs msgpack-config.cmake under cmake/msgpackc-cxx/.
find_package(msgpack CONFIG REQUIRED)
find_package(toml11 CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)  # command lines of loyaltyd, loyaltyctl, loyalty-loadgen
# OpenSSL (libssl-dev) under Asio's header-only SSL layer: TLS on the wire
# protocol (io/detail/stream.hpp).
find_package(OpenSSL REQUIRED)

# libcurl (libcurl4-openssl-dev): loyalty-webhooks' HTTP(S) client, used
# only by io/client/webhooks/http_post.cpp.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)

# CAF 0.17.6 (libcaf-dev) ships no CMake package: find headers and libraries.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
add_library(caf_core_dep INTERFACE)
target_include_directories(caf_core_dep SYSTEM INTERFACE ${CAF_INCLUDE_DIR})
target_link_libraries(caf_core_dep INTERFACE ${CAF_CORE_LIBRARY} Threads::Threads)

# LMDB (liblmdb-dev): plain C library, used only by ledger/.
find_path(LMDB_INCLUDE_DIR lmdb.h REQUIRED)
find_library(LMDB_LIBRARY lmdb REQUIRED)
add_library(lmdb_dep INTERFACE)
target_include_directories(lmdb_dep SYSTEM INTERFACE ${LMDB_INCLUDE_DIR})
target_link_libraries(lmdb_dep INTERFACE ${LMDB_LIBRARY})

# C Raft 0.15 (libraft-dev) on libuv (libuv1-dev): a cluster's consensus,
# used only by ledger/cluster/. Its docs: /usr/share/doc/libraft-dev.
find_path(RAFT_INCLUDE_DIR raft.h REQUIRED)
find_library(RAFT_LIBRARY raft REQUIRED)
find_library(UV_LIBRARY uv REQUIRED)
add_library(raft_dep INTERFACE)
target_include_directories(raft_dep SYSTEM INTERFACE ${RAFT_INCLUDE_DIR})
target_link_libraries(raft_dep INTERFACE ${RAFT_LIBRARY} ${UV_LIBRARY})

# Standalone Asio (libasio-dev), header only.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(asio_dep INTERFACE)
target_include_directories(asio_dep SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(asio_dep INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(asio_dep INTERFACE Threads::Threads)

if(LOYALTY_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
  include(Catch)
endif()
if(LOYALTY_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
