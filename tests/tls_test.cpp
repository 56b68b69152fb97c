#include <catch2/catch.hpp>
TEST_CASE("placeholder", "[io][tls]") { CHECK(true); }
