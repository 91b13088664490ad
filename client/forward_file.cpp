#include "forward_file.hpp"

namespace kvmnet::client {

std::vector<model::ForwardFields> forward_file_fields(const std::string& text)
{
    const std::vector<model::PortForward> forwards = model::parse_forwards(text);
    std::vector<model::ForwardFields> fields;
    fields.reserve(forwards.size());
    for (const model::PortForward& f : forwards)
        fields.push_back(model::fields_of(f));
    return fields;
}

}  // namespace kvmnet::client
