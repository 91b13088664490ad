#include "output.hpp"

#include <algorithm>
#include <cctype>

namespace kvmnet::client {

namespace {

std::string lower(std::string text)
{
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

}  // namespace

std::vector<std::size_t> select_columns(const std::vector<Column>& columns, const std::vector<std::string>& wanted)
{
    std::vector<std::size_t> chosen;
    if (wanted.empty()) {
        for (std::size_t i = 0; i < columns.size(); ++i)
            if (columns[i].shown) chosen.push_back(i);
        return chosen;
    }
    for (const auto& key : wanted) {
        const auto it =
            std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.key == lower(key); });
        if (it == columns.end()) {
            std::string known;
            for (const auto& c : columns)
                known += (known.empty() ? "" : ",") + c.key;
            throw ColumnError("unknown column '" + key + "' (columns: " + known + ")");
        }
        chosen.push_back(static_cast<std::size_t>(it - columns.begin()));
    }
    return chosen;
}

std::string terse_escape(const std::string& value)
{
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == ':' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

void print_table(std::ostream& out, const std::vector<Column>& columns,
                 const std::vector<std::vector<std::string>>& rows, const TableStyle& style,
                 const std::vector<std::string>& notes)
{
    const auto chosen = select_columns(columns, style.columns);
    if (style.terse) {
        for (const auto& row : rows) {
            for (std::size_t i = 0; i < chosen.size(); ++i)
                out << (i ? ":" : "") << terse_escape(row.at(chosen[i]));
            out << "\n";
        }
        return;
    }
    const auto cell = [](const std::string& text) -> const std::string& {
        static const std::string dash = "-";
        return text.empty() ? dash : text;
    };
    std::vector<std::size_t> width(chosen.size(), 0);
    for (std::size_t i = 0; i < chosen.size(); ++i) {
        if (style.legend) width[i] = columns[chosen[i]].title.size();
        for (const auto& row : rows)
            width[i] = std::max(width[i], cell(row.at(chosen[i])).size());
    }
    const auto line = [&](auto text_of) {
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            const std::string& text = text_of(chosen[i]);
            out << text;
            if (i + 1 < chosen.size()) out << std::string(width[i] - text.size() + 2, ' ');
        }
        out << "\n";
    };
    if (style.legend) line([&](std::size_t c) -> const std::string& { return columns[c].title; });
    for (std::size_t r = 0; r < rows.size(); ++r) {
        line([&](std::size_t c) -> const std::string& { return cell(rows[r].at(c)); });
        if (r < notes.size() && !notes[r].empty() && style.columns.empty()) out << notes[r] << "\n";
    }
}

void split_port(const nlohmann::json& port, nlohmann::json& first, nlohmann::json& last)
{
    if (port.is_number_unsigned() || port.is_number_integer()) {
        first = last = port;
        return;
    }
    if (port.is_string()) {
        const std::string text = port.get<std::string>();
        const auto dash = text.find('-');
        try {
            first = std::stoul(text.substr(0, dash));
            last = dash == std::string::npos ? first : nlohmann::json(std::stoul(text.substr(dash + 1)));
            return;
        } catch (const std::exception&) {
        }
    }
    first = port;
    last = nullptr;
}

nlohmann::json with_nulls(nlohmann::json object, const std::vector<std::string>& keys)
{
    for (const auto& key : keys)
        if (!object.contains(key)) object[key] = nullptr;
    return object;
}

nlohmann::json forward_shape(const nlohmann::json& forward)
{
    nlohmann::json shaped = forward;
    for (const char* key : {"host_port", "guest_port"}) {
        nlohmann::json first, last;
        split_port(forward.value(key, nlohmann::json()), first, last);
        shaped[key] = first;
        shaped[std::string(key) + "_end"] = last;
    }
    return with_nulls(std::move(shaped), {"proto", "host_address", "guest", "guest_address", "rate", "description",
                                          "connections", "first_packet_bytes", "dropped", "problem"});
}

}  // namespace kvmnet::client
