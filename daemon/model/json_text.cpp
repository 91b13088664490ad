// Strict JSON text parsing: nlohmann's SAX parser feeding a DOM builder that
// refuses duplicate keys and deep nesting, naming the path.
#include "model/json_text.hpp"

#include <nlohmann/json.hpp>

#include <utility>
#include <vector>

namespace kvmnet::model {
namespace {

using json = nlohmann::json;

class StrictBuilder {
public:
    StrictBuilder(json& root, std::string field, std::string root_path)
        : root_(root), field_(std::move(field)), root_path_(std::move(root_path))
    {
    }

    bool null() { return value(nullptr); }
    bool boolean(bool v) { return value(v); }
    bool number_integer(json::number_integer_t v) { return value(v); }
    bool number_unsigned(json::number_unsigned_t v) { return value(v); }
    bool number_float(json::number_float_t v, const json::string_t&) { return value(v); }
    bool string(json::string_t& v) { return value(std::move(v)); }
    bool binary(json::binary_t& v) { return value(std::move(v)); }

    bool start_object(std::size_t) { return open(json::object()); }
    bool start_array(std::size_t) { return open(json::array()); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }

    bool key(json::string_t& k)
    {
        json& object = *open_.back().value;
        if (object.contains(k)) throw invalid_field(child_path(k), "duplicate key");
        key_ = &object[k];
        key_path_ = child_path(k);
        return true;
    }

    bool parse_error(std::size_t, const std::string&, const json::exception& e)
    {
        throw invalid_field(field_, std::string("not valid JSON: ") + e.what());
    }

private:
    struct Open {
        json* value;
        std::string path;
    };

    // Where the next value goes, and its path.
    std::pair<json*, std::string> slot()
    {
        if (open_.empty()) return {&root_, ""};
        Open& parent = open_.back();
        if (parent.value->is_array()) {
            const std::string path = parent.path + "[" + std::to_string(parent.value->size()) + "]";
            parent.value->push_back(nullptr);
            return {&parent.value->back(), path};
        }
        return {key_, key_path_};
    }

    bool value(json v)
    {
        *slot().first = std::move(v);
        return true;
    }

    bool open(json container)
    {
        auto [target, path] = slot();
        if (open_.empty()) path = container.is_array() ? field_ : root_path_;
        if (open_.size() >= max_json_depth)
            throw invalid_field(path.empty() ? field_ : path,
                                "nested deeper than " + std::to_string(max_json_depth) + " levels");
        *target = std::move(container);
        open_.push_back({target, std::move(path)});
        return true;
    }

    bool close()
    {
        open_.pop_back();
        return true;
    }

    std::string child_path(const std::string& k) const
    {
        const std::string& parent = open_.back().path;
        return parent.empty() ? k : parent + "." + k;
    }

    json& root_;
    std::string field_;
    std::string root_path_;
    std::vector<Open> open_;
    json* key_ = nullptr;
    std::string key_path_;
};

}  // namespace

json parse_json_text(const std::string& text, const std::string& field, const std::string& root)
{
    if (text.size() > max_document_bytes)
        throw invalid_field(field, "longer than " + std::to_string(max_document_bytes) + " bytes");
    json result;
    StrictBuilder builder(result, field, root);
    json::sax_parse(text, &builder);
    return result;
}

}  // namespace kvmnet::model
