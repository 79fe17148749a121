// chainfuzz's driver of llama.cpp's output parser: JSON lines in, JSON lines out.
//
// Each request names a setup (template source, tools, chat_template_kwargs, reasoning format),
// which is turned into parser parameters the way llama-server turns a chat request into them
// (oaicompat_chat_params_parse, then params_from_json_cmpl), once per setup. Then:
//   {"op":"format", "setup":{...}}                  what common_chat_templates_apply picked
//   {"op":"parse",  "setup":{...}, "text":"..."}    common_chat_parse(text, is_partial=false)
//   {"op":"stream", "setup":{...}, "chunks":[...]}  llama-server's streaming: each chunk through
//       task_result_state::update_chat_msg(chunk, is_partial=true), then the final response's
//       update_chat_msg("", is_partial=false), each diff converted with the server's own
//       server_chat_msg_diff_to_json_oaicompat.
// The server's update_chat_msg and diff conversion are cut out of tools/server at build time
// (server_state.inc), not copied here, so they are the server's code. An exception becomes
// {"error": "TYPE: message"}; a GGML_ASSERT aborts the process, which the caller reports.

#include "chat.h"
#include "json.h"
#include "log.h"

#include <cxxabi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <unordered_set>
#include <vector>

using json = common_json;

// The server's random 32-character ids (gen_tool_call_id in tools/server/server-common.cpp),
// made deterministic so that two runs of one input agree: "call_0", "call_1", ... per stream.
static size_t g_next_tool_call_id = 0;

static std::string gen_tool_call_id() {
    return "call_" + std::to_string(g_next_tool_call_id++);
}

// tools/server/server-task.h's task_result_state, less the Responses/Anthropic API fields that
// update_chat_msg does not touch.
struct task_result_state {
    std::vector<common_chat_msg_diff> diffs;
    common_chat_parser_params chat_parser_params;
    common_chat_msg chat_msg;
    std::string generated_text;
    std::vector<std::string> generated_tool_call_ids;
    std::unordered_set<size_t> sent_tool_call_names;

    explicit task_result_state(const common_chat_parser_params & params) : chat_parser_params(params) {}

    common_chat_msg update_chat_msg(const std::string & text_added, bool is_partial,
                                    std::vector<common_chat_msg_diff> & diffs, bool filter_tool_calls = false);
};

#include "server_state.inc"

struct setup {
    common_chat_templates_ptr tmpls;
    common_chat_params chat_params;
    bool enable_thinking = false;
    common_chat_parser_params whole;   // stream=false
    common_chat_parser_params streamed;  // stream=true (reasoning_in_content differs)
};

static std::string exception_line(const std::exception & e) {
    int status = 0;
    char * name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::string type = status == 0 && name ? name : typeid(e).name();
    std::free(name);
    return type + ": " + e.what();
}

static std::string str_or(const json & obj, const std::string & key, const std::string & def) {
    return obj.contains(key) && obj.at(key).is_string() ? obj.at(key).get<std::string>() : def;
}

// What llama-server does with a chat request's template fields: its defaults are
// --reasoning-format deepseek (common_params) and --reasoning auto (thinking on where the
// template supports it), overridden by chat_template_kwargs.enable_thinking.
static std::unique_ptr<setup> open_setup(const json & req) {
    auto s = std::make_unique<setup>();
    s->tmpls = common_chat_templates_init(nullptr, req.at("template").get<std::string>(),
                                          str_or(req, "bos_token", ""), str_or(req, "eos_token", ""));
    auto reasoning_format = common_reasoning_format_from_name(str_or(req, "reasoning_format", "deepseek"));

    common_chat_templates_inputs inputs;
    json messages = req.contains("messages") && req.at("messages").is_array() ? req.at("messages")
                                                                             : json::parse(R"([{"role":"user","content":"Hello"}])");
    inputs.messages = common_chat_msgs_parse_oaicompat(messages);
    json tools = req.contains("tools") ? req.at("tools") : json();
    inputs.tools = common_chat_tools_parse_oaicompat(tools);
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat("auto");
    auto caps = common_chat_templates_get_caps(s->tmpls.get());
    inputs.parallel_tool_calls = caps["supports_parallel_tool_calls"];
    inputs.add_generation_prompt = true;
    inputs.reasoning_format = reasoning_format;
    inputs.enable_thinking = common_chat_templates_support_enable_thinking(s->tmpls.get());
    if (req.contains("kwargs") && req.at("kwargs").is_object()) {
        for (const auto & item : req.at("kwargs").items()) {
            inputs.chat_template_kwargs[item.key()] = item.value().dump();
        }
    }
    auto it = inputs.chat_template_kwargs.find("enable_thinking");
    if (it != inputs.chat_template_kwargs.end()) {
        if (it->second == "true") {
            inputs.enable_thinking = true;
        } else if (it->second == "false") {
            inputs.enable_thinking = false;
        } else if (!it->second.empty() && it->second[0] == '"') {
            throw std::invalid_argument("invalid type for \"enable_thinking\" (expected boolean, got string)");
        }
    }
    s->enable_thinking = inputs.enable_thinking;
    s->chat_params = common_chat_templates_apply(s->tmpls.get(), inputs);

    // params_from_json_cmpl: chat_format, reasoning_format, generation_prompt, chat_parser.
    for (auto * p : {&s->whole, &s->streamed}) {
        p->format = s->chat_params.format;
        p->reasoning_format = reasoning_format;
        p->generation_prompt = s->chat_params.generation_prompt;
        p->parse_tool_calls = true;
        if (!s->chat_params.parser.empty()) {
            p->parser.load(s->chat_params.parser);
        }
    }
    s->whole.reasoning_in_content = false;
    s->streamed.reasoning_in_content = reasoning_format == COMMON_REASONING_FORMAT_DEEPSEEK_LEGACY;
    return s;
}

static json msg_json(const common_chat_msg & msg) {
    json calls = json::array();
    for (const auto & tc : msg.tool_calls) {
        json call = json::object();
        call["name"] = tc.name;
        call["arguments"] = tc.arguments;
        call["id"] = tc.id;
        calls.push_back(call);
    }
    json out = json::object();
    out["content"] = msg.content;
    out["reasoning_content"] = msg.reasoning_content;
    out["tool_calls"] = calls;
    return out;
}

static json diffs_json(const std::vector<common_chat_msg_diff> & diffs) {
    json out = json::array();
    for (const auto & diff : diffs) {
        out.push_back(server_chat_msg_diff_to_json_oaicompat(diff));
    }
    return out;
}

int main() {
    // Replies get their own copy of stdout; fd 1 goes to stderr, so that nothing the library
    // prints lands in the reply stream.
    FILE * out = fdopen(dup(1), "w");
    dup2(2, 1);
    common_log_set_verbosity_thold(-1);  // no "unparsed output" warning per bad text

    std::map<std::string, std::unique_ptr<setup>> setups;  // one per distinct setup
    std::string line;
    while (std::getline(std::cin, line)) {
        json reply = json::object();
        try {
            json req = json::parse(line);
            std::string op = req.at("op").get<std::string>();
            const json & setup_req = req.at("setup");
            std::string key = setup_req.dump();
            auto found = setups.find(key);
            if (found == setups.end()) {
                if (setups.size() >= 64) {  // a run uses a few; a bound keeps a long one small
                    setups.clear();
                }
                found = setups.emplace(key, open_setup(setup_req)).first;
            }
            setup & s = *found->second;
            if (op == "format") {
                reply["format"] = common_chat_format_name(s.chat_params.format);
                reply["generation_prompt"] = s.chat_params.generation_prompt;
                reply["supports_thinking"] = s.chat_params.supports_thinking;
                reply["enable_thinking"] = s.enable_thinking;
                reply["thinking_start_tag"] = s.chat_params.thinking_start_tag;
                reply["thinking_end_tags"] = s.chat_params.thinking_end_tags;
                reply["has_parser"] = !s.chat_params.parser.empty();
            } else if (op == "parse") {
                reply["msg"] = msg_json(common_chat_parse(req.at("text").get<std::string>(), false, s.whole));
            } else if (op == "stream") {
                g_next_tool_call_id = 0;
                task_result_state state(s.streamed);
                json deltas = json::array();
                for (const auto & chunk : req.at("chunks")) {
                    std::vector<common_chat_msg_diff> diffs;
                    state.update_chat_msg(chunk.get<std::string>(), true, diffs);
                    deltas.push_back(diffs_json(diffs));
                }
                std::vector<common_chat_msg_diff> diffs;  // the final response: content "" in stream mode
                common_chat_msg msg = state.update_chat_msg("", false, diffs);
                reply["deltas"] = deltas;
                reply["final"] = diffs_json(diffs);
                reply["msg"] = msg_json(msg);
            } else {
                throw std::invalid_argument("unknown op " + op);
            }
        } catch (const std::exception & e) {
            reply = json::object();
            reply["error"] = exception_line(e);
        }
        std::string text = reply.dump_safe();
        std::fprintf(out, "%s\n", text.c_str());
        std::fflush(out);
    }
    return 0;
}
