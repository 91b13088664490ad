// kvmnetctl's table and JSON output conventions, kept apart from the bus
// code so the unit tests reach them: column widths measured from the data,
// column selection (-o), no legend, nmcli's terse form (-t), and the one
// JSON shape of list output (ports as numbers with *_end, absent as null).
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvmnet::client {

struct Column {
    std::string key;    // what -o names: lower case, e.g. "rx_bytes"
    std::string title;  // the legend: "RX BYTES"
    bool shown = true;  // shown without -o
};

struct TableStyle {
    bool legend = true;                // --no-legend: false
    bool terse = false;                // -t
    std::vector<std::string> columns;  // -o: keys, in this order; empty: the default ones
};

// An -o naming a column the table does not have.
class ColumnError : public std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// The indexes into `columns` to print: the -o keys (case does not matter)
// or the default ones. Throws ColumnError naming the unknown key and the
// known ones.
std::vector<std::size_t> select_columns(const std::vector<Column>& columns, const std::vector<std::string>& wanted);

// A cell's text in terse output: ':' and '\' escaped with '\' (as nmcli -t).
std::string terse_escape(const std::string& value);

// One row per vector of cells, a cell per entry of `columns`; an empty cell
// is "-" in a table and empty in terse output. A table pads every column
// but the last to its widest cell (legend included) plus two spaces. A
// non-empty `notes[i]` is printed as a line of its own under row i, in a
// table with the default columns only (port list's "  problem: ...").
void print_table(std::ostream& out, const std::vector<Column>& columns,
                 const std::vector<std::vector<std::string>>& rows, const TableStyle& style,
                 const std::vector<std::string>& notes = {});

// "8080" -> 8080, "8080-8090" -> 8080 (and 8090 as the end); the document
// keeps a range as a string, the --json output splits it.
void split_port(const nlohmann::json& port, nlohmann::json& first, nlohmann::json& last);

// A ListForwards object in kvmnetctl's JSON shape: host_port, host_port_end,
// guest_port, guest_port_end as numbers (end equal to the first for one
// port), and every key of the shape present, null when the daemon left it out.
nlohmann::json forward_shape(const nlohmann::json& forward);

// Every key in `keys` present in `object`, null where absent.
nlohmann::json with_nulls(nlohmann::json object, const std::vector<std::string>& keys);

}  // namespace kvmnet::client
