// kvmnetctl's output conventions (client/output): measured columns, -o,
// --no-legend, -t, and the JSON shape of forwards.
#include "output.hpp"

#include <catch2/catch.hpp>

#include <sstream>

namespace unit_test_output {

using kvmnet::client::Column;
using kvmnet::client::TableStyle;
using nlohmann::json;

namespace {

const std::vector<Column> columns = {{"name", "NAME"}, {"mode", "MODE"}, {"note", "NOTE", false}};

TableStyle style(bool legend, bool terse, std::vector<std::string> columns = {})
{
    TableStyle s;
    s.legend = legend;
    s.terse = terse;
    s.columns = std::move(columns);
    return s;
}

std::string table(const std::vector<std::vector<std::string>>& rows, const TableStyle& style,
                  const std::vector<std::string>& notes = {})
{
    std::ostringstream out;
    kvmnet::client::print_table(out, columns, rows, style, notes);
    return out.str();
}

}  // namespace

TEST_CASE("output: columns are as wide as their widest cell (32 characters too)", "[output]")
{
    const std::string name(32, 'n');
    CHECK(table({{"a", "nat", ""}, {name, "isolated", ""}}, {}) ==
          "NAME" + std::string(28, ' ') + "  MODE\n" + "a" + std::string(31, ' ') + "  nat\n" + name + "  isolated\n");
    CHECK(table({{"a", "", ""}}, {}) == "NAME  MODE\na     -\n");
}

TEST_CASE("output: no legend, chosen columns, terse", "[output]")
{
    const std::vector<std::vector<std::string>> rows = {{"a:b", "nat", "x\\y"}, {"c", "", ""}};
    CHECK(table(rows, style(false, false)) == "a:b  nat\nc    -\n");
    CHECK(table(rows, style(true, false, {"note", "NAME"})) == "NOTE  NAME\nx\\y   a:b\n-     c\n");
    CHECK(table(rows, style(true, true)) == "a\\:b:nat\nc:\n");
    CHECK(table(rows, style(true, true, {"note"})) == "x\\\\y\n\n");
    CHECK_THROWS_AS(table(rows, style(true, false, {"bogus"})), kvmnet::client::ColumnError);
}

TEST_CASE("output: a row note goes under it with the default columns only", "[output]")
{
    CHECK(table({{"a", "nat", ""}}, {}, {"  problem: gone"}) == "NAME  MODE\na     nat\n  problem: gone\n");
    CHECK(table({{"a", "nat", ""}}, style(true, false, {"name"}), {"  problem: gone"}) == "NAME\na\n");
    CHECK(table({{"a", "nat", ""}}, style(true, true), {"  problem: gone"}) == "a:nat\n");
}

TEST_CASE("output: forward ports are numbers with an end, absent keys null", "[output]")
{
    const json one =
        kvmnet::client::forward_shape({{"proto", "tcp"}, {"host_port", 8080}, {"guest", "web"}, {"guest_port", 80}});
    CHECK(one["host_port"] == 8080);
    CHECK(one["host_port_end"] == 8080);
    CHECK(one["guest_port_end"] == 80);
    CHECK(one["rate"].is_null());
    CHECK(one["description"].is_null());
    CHECK(one.contains("connections"));
    const json range = kvmnet::client::forward_shape({{"proto", "udp"},
                                                      {"host_port", "5000-5010"},
                                                      {"guest", "10.0.0.5"},
                                                      {"guest_port", "6000-6010"},
                                                      {"rate", 5}});
    CHECK(range["host_port"] == 5000);
    CHECK(range["host_port_end"] == 5010);
    CHECK(range["guest_port"] == 6000);
    CHECK(range["guest_port_end"] == 6010);
    CHECK(range["rate"] == 5);
}

}  // namespace unit_test_output
