// Path edits of a network document (client/doc_path.hpp).
#include "doc_path.hpp"

#include <algorithm>
#include <cctype>

namespace kvmnet::client {

using json = nlohmann::json;

namespace {

bool all_digits(const std::string& s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::size_t index_of(const std::string& digits, const std::string& path)
{
    if (!all_digits(digits) || digits.size() > 9)
        throw PathError("InvalidArgument", path + ": '" + digits + "' is not an array index");
    return static_cast<std::size_t>(std::stoul(digits));
}

std::string type_of(const json& j)
{
    if (j.is_object()) return "an object";
    if (j.is_array()) return "an array";
    if (j.is_string()) return "a string";
    if (j.is_boolean()) return "a boolean";
    if (j.is_number()) return "a number";
    return "null";
}

std::string child_name(const std::string& prefix, const PathStep& step)
{
    if (const auto* key = std::get_if<std::string>(&step)) return prefix.empty() ? *key : prefix + "." + *key;
    return prefix + "[" + std::to_string(std::get<std::size_t>(step)) + "]";
}

// A ".N" step into an array is an index; into an object, a field name.
PathStep resolve(const json& container, const PathStep& step, const std::string& prefix)
{
    if (const auto* key = std::get_if<std::string>(&step); key && container.is_array())
        return index_of(*key, prefix.empty() ? *key : prefix + "." + *key);
    return step;
}

// The node at `steps`; missing fields are created (as objects, or as null
// for the last step) when `create`, else nullptr. `shown` gets the path as
// the daemon would name it.
json* walk(json& document, const std::vector<PathStep>& steps, bool create, std::string& shown)
{
    json* node = &document;
    shown.clear();
    for (const PathStep& raw : steps) {
        if (node->is_null() && create) *node = json::object();
        const PathStep step = resolve(*node, raw, shown);
        const std::string name = child_name(shown, step);
        if (const auto* key = std::get_if<std::string>(&step)) {
            if (!node->is_object())
                throw PathError("InvalidArgument", name + ": " + (shown.empty() ? "the document" : shown) + " is " +
                                                       type_of(*node) + ", not an object");
            auto it = node->find(*key);
            if (it == node->end()) {
                if (!create) throw PathError("NotFound", name + ": no such field");
                node = &(*node)[*key];
            } else {
                node = &*it;
            }
        } else {
            const std::size_t i = std::get<std::size_t>(step);
            if (!node->is_array())
                throw PathError("InvalidArgument", name + ": " + (shown.empty() ? "the document" : shown) + " is " +
                                                       type_of(*node) + ", not an array");
            if (i >= node->size())
                throw PathError(create ? "InvalidArgument" : "NotFound", name + ": no such element (" + shown +
                                                                             " has " + std::to_string(node->size()) +
                                                                             (create ? "; += appends one)" : ")"));
            node = &(*node)[i];
        }
        shown = name;
    }
    return node;
}

}  // namespace

std::vector<PathStep> parse_path(const std::string& path)
{
    std::vector<PathStep> steps;
    std::size_t i = 0;
    const auto bad = [&](const std::string& why) { return PathError("InvalidArgument", "'" + path + "': " + why); };
    if (path.empty()) throw bad("empty path");
    while (i < path.size()) {
        if (path[i] == '[') {
            const auto close = path.find(']', i);
            if (close == std::string::npos) throw bad("'[' without ']'");
            steps.emplace_back(index_of(path.substr(i + 1, close - i - 1), path));
            i = close + 1;
            if (i < path.size() && path[i] != '.' && path[i] != '[') throw bad("expected '.' or '[' after ']'");
            if (i < path.size() && path[i] == '.') {
                ++i;
                if (i == path.size()) throw bad("ends with '.'");
            }
            continue;
        }
        const auto end = path.find_first_of(".[", i);
        const std::string key = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
        if (key.empty()) throw bad("empty field name");
        steps.emplace_back(key);
        if (end == std::string::npos) break;
        i = end;
        if (path[i] == '.') {
            ++i;
            if (i == path.size()) throw bad("ends with '.'");
        }
    }
    return steps;
}

json parse_value(const std::string& text)
{
    if (text == "on") return true;
    if (text == "off") return false;
    json value = json::parse(text, nullptr, false);
    if (value.is_discarded()) return text;
    return value;
}

Assignment parse_assignment(const std::string& argument)
{
    const auto eq = argument.find('=');
    if (eq == std::string::npos)
        throw PathError("InvalidArgument", "expected PATH=VALUE or PATH+=VALUE, got '" + argument + "'");
    Assignment a;
    a.append = eq > 0 && argument[eq - 1] == '+';
    a.path = argument.substr(0, a.append ? eq - 1 : eq);
    parse_path(a.path);  // a malformed path is reported before anything is read
    a.value = parse_value(argument.substr(eq + 1));
    return a;
}

void merge_patch(json& target, const json& patch)
{
    if (!patch.is_object()) {
        target = patch;
        return;
    }
    if (!target.is_object()) target = json::object();
    for (const auto& [key, value] : patch.items()) {
        if (value.is_null())
            target.erase(key);
        else
            merge_patch(target[key], value);
    }
}

void set_path(json& document, const std::string& path, const json& value)
{
    if (value.is_null()) {
        try {
            unset_path(document, path);
        } catch (const PathError& e) {
            if (e.kind() != "NotFound") throw;
        }
        return;
    }
    std::string shown;
    json& node = *walk(document, parse_path(path), true, shown);
    if (value.is_object())
        merge_patch(node, value);
    else
        node = value;
}

void append_path(json& document, const std::string& path, const json& value)
{
    std::string shown;
    json& node = *walk(document, parse_path(path), true, shown);
    if (node.is_null()) node = json::array();
    if (!node.is_array())
        throw PathError("InvalidArgument", shown + ": is " + type_of(node) + ", not an array; += appends to arrays");
    node.push_back(value);
}

void unset_path(json& document, const std::string& path)
{
    auto steps = parse_path(path);
    const PathStep last = steps.back();
    steps.pop_back();
    std::string shown;
    json& parent = *walk(document, steps, false, shown);
    const PathStep step = resolve(parent, last, shown);
    const std::string name = child_name(shown, step);
    if (const auto* key = std::get_if<std::string>(&step)) {
        if (!parent.is_object())
            throw PathError("InvalidArgument", name + ": " + (shown.empty() ? "the document" : shown) + " is " +
                                                   type_of(parent) + ", not an object");
        if (parent.erase(*key) == 0) throw PathError("NotFound", name + ": no such field");
        return;
    }
    const std::size_t i = std::get<std::size_t>(step);
    if (!parent.is_array())
        throw PathError("InvalidArgument", name + ": " + (shown.empty() ? "the document" : shown) + " is " +
                                               type_of(parent) + ", not an array");
    if (i >= parent.size())
        throw PathError("NotFound",
                        name + ": no such element (" + shown + " has " + std::to_string(parent.size()) + ")");
    parent.erase(parent.begin() + static_cast<std::ptrdiff_t>(i));
}

}  // namespace kvmnet::client
