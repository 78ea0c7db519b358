// Emulated NVRTC: "compiles" a CUDA kernel source for the CPU.
//
// The source, preceded by the forced include of emulation.h and followed by an entry wrapper for each of its
// `extern "C" __global__ void NAME(...)` kernels, is compiled by the host C++ compiler into a shared library in the
// cache directory ($AIDGE_EMULATOR_CACHE, default /tmp/aidge-cuda-emulator-$UID), named by a hash of everything that
// goes into it, so compiling the same source again costs nothing. The "PTX" handed back is a short text naming that
// library, which the emulated cuModuleLoadData loads.
//
// When AIDGE_EMULATOR_NVRTC names a real libnvrtc, the source is first compiled with it for compute_90 (without
// emulation.h and the wrappers), and its errors are the compilation's errors: the sources that run on the CPU are
// then also proven to be valid CUDA.
#include "internal.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

extern char** environ;

namespace aidge_emu {
namespace {

enum : int {
    NVRTC_SUCCESS = 0,
    NVRTC_ERROR_INVALID_INPUT = 3,
    NVRTC_ERROR_INVALID_PROGRAM = 4,
    NVRTC_ERROR_COMPILATION = 6,
    NVRTC_ERROR_INTERNAL_ERROR = 11,
};

// The compiler that built the emulator, which scripts/build_cuda_emulator.sh passes.
#ifndef AIDGE_EMU_DEFAULT_CXX
#define AIDGE_EMU_DEFAULT_CXX "c++"
#endif

const char kEmulationHeader[] =
#include "emulation_h.inc"
    ;

constexpr char kImageMagic[] = "// aidge cuda emulator\n";

struct Program {
    std::string source;
    std::string name;
    std::vector<std::pair<std::string, std::string>> headers;  // include name, content
    std::string log;
    std::string ptx;  // empty until a compilation succeeded
};

std::mutex g_programs_mutex;
std::set<Program*> g_programs;

Program* find_program(void* handle) {
    std::lock_guard<std::mutex> lock(g_programs_mutex);
    return g_programs.count(static_cast<Program*>(handle)) ? static_cast<Program*>(handle) : nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the source.

// The source with its comments blanked out (line breaks kept), so that commented-out code is not scanned.
std::string strip_comments(const std::string& source) {
    std::string text = source;
    size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (c == '"' || c == '\'') {
            for (++i; i < text.size() && text[i] != c; ++i)
                if (text[i] == '\\') ++i;
            ++i;
        } else if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
            for (; i < text.size() && text[i] != '\n'; ++i) text[i] = ' ';
        } else if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
            size_t end = text.find("*/", i + 2);
            end = end == std::string::npos ? text.size() : end + 2;
            for (; i < end; ++i)
                if (text[i] != '\n') text[i] = ' ';
        } else {
            ++i;
        }
    }
    return text;
}

bool is_identifier_char(char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; }

struct Kernel {
    std::string name;
    std::string max_threads;  // the first argument of its __launch_bounds__, if it has one
};

// The `extern "C" __global__ [__launch_bounds__(...)] void [__launch_bounds__(...)] NAME(` kernels.
std::vector<Kernel> find_kernels(const std::string& text) {
    auto skip_space = [&](size_t i) {
        while (i < text.size() && isspace(static_cast<unsigned char>(text[i]))) ++i;
        return i;
    };
    auto word_at = [&](size_t i, const char* word) {
        size_t length = strlen(word);
        return text.compare(i, length, word) == 0 &&
               (i + length == text.size() || !is_identifier_char(text[i + length]));
    };
    auto skip_launch_bounds = [&](size_t i, std::string& max_threads) {
        if (!word_at(i, "__launch_bounds__")) return i;
        i = skip_space(i + strlen("__launch_bounds__"));
        if (i >= text.size() || text[i] != '(') return i;
        size_t first = i + 1;
        size_t comma = std::string::npos;
        for (int depth = 0; i < text.size(); ++i) {
            if (text[i] == '(') ++depth;
            if (text[i] == ',' && depth == 1 && comma == std::string::npos) comma = i;
            if (text[i] == ')' && --depth == 0) {
                max_threads = text.substr(first, (comma == std::string::npos ? i : comma) - first);
                return skip_space(i + 1);
            }
        }
        return i;
    };
    std::vector<Kernel> kernels;
    for (size_t at = text.find("__global__"); at != std::string::npos; at = text.find("__global__", at + 1)) {
        if (at > 0 && is_identifier_char(text[at - 1])) continue;
        size_t before = at;
        while (before > 0 && isspace(static_cast<unsigned char>(text[before - 1]))) --before;
        if (before < 3 || text.compare(before - 3, 3, "\"C\"") != 0) continue;
        before -= 3;
        while (before > 0 && isspace(static_cast<unsigned char>(text[before - 1]))) --before;
        if (before < 6 || text.compare(before - 6, 6, "extern") != 0 ||
            (before > 6 && is_identifier_char(text[before - 7])))
            continue;
        Kernel kernel;
        size_t i = skip_launch_bounds(skip_space(at + strlen("__global__")), kernel.max_threads);
        if (!word_at(i, "void")) continue;
        i = skip_launch_bounds(skip_space(i + 4), kernel.max_threads);
        size_t start = i;
        while (i < text.size() && is_identifier_char(text[i])) ++i;
        if (i == start || text[skip_space(i)] != '(') continue;
        kernel.name = text.substr(start, i - start);
        bool known = false;
        for (Kernel& seen : kernels) {
            if (seen.name != kernel.name) continue;
            known = true;  // a declaration and its definition name one kernel
            if (seen.max_threads.empty()) seen.max_threads = kernel.max_threads;
        }
        if (!known) kernels.push_back(kernel);
    }
    return kernels;
}

// Whether a text calls a barrier, a shuffle or a vote: __syncthreads*, __syncwarp, __shfl*, *_sync.
bool names_a_barrier(const std::string& text) {
    for (size_t i = 0; i < text.size();) {
        if (!is_identifier_char(text[i])) {
            ++i;
            continue;
        }
        size_t start = i;
        while (i < text.size() && is_identifier_char(text[i])) ++i;
        std::string word = text.substr(start, i - start);
        if (word.rfind("__syncthreads", 0) == 0 || word == "__syncwarp" || word.rfind("__shfl", 0) == 0 ||
            (word.size() > 5 && word.compare(word.size() - 5, 5, "_sync") == 0))
            return true;
    }
    return false;
}

// ---------------------------------------------------------------------------------------------------------------
// The cache directory and its files.

// 128 bits of two FNV-1a hashes over length-prefixed fields, as hex.
class Hash {
public:
    Hash& add(const std::string& field) {
        std::string length = std::to_string(field.size()) + ":";
        feed(length);
        feed(field);
        return *this;
    }
    std::string hex() const {
        char text[33];
        snprintf(text, sizeof text, "%016llx%016llx", (unsigned long long)a_, (unsigned long long)b_);
        return text;
    }

private:
    void feed(const std::string& bytes) {
        for (unsigned char c : bytes) {
            a_ = (a_ ^ c) * 0x100000001b3ull;
            b_ = (b_ ^ c) * 0x100000001b3ull;
        }
    }
    uint64_t a_ = 0xcbf29ce484222325ull;
    uint64_t b_ = 0x84222325cbf29ce4ull;
};

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Creates the directory and its parents; an existing one must belong to this user, since the libraries in it are
// loaded into the process.
bool make_private_directory(const std::string& path, std::string& error) {
    for (size_t slash = path.find('/', 1); ; slash = path.find('/', slash + 1)) {
        std::string prefix = slash == std::string::npos ? path : path.substr(0, slash);
        if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
            error = "cannot create " + prefix + ": " + strerror(errno);
            return false;
        }
        if (slash == std::string::npos) break;
    }
    struct stat info {};
    if (stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != getuid()) {
        error = path + " is not a directory of this user";
        return false;
    }
    return true;
}

std::string cache_directory(std::string& error) {
    const char* configured = getenv("AIDGE_EMULATOR_CACHE");
    std::string path = configured && *configured ? configured : "/tmp/aidge-cuda-emulator-" + std::to_string(getuid());
    return make_private_directory(path, error) ? path : std::string();
}

// A suffix for temporary files that no other process or thread uses at the same time.
std::string unique_suffix() {
    static std::atomic<unsigned> counter{0};
    return "." + std::to_string(getpid()) + "." + std::to_string(counter++) + ".tmp";
}

// Writes through a temporary name and a rename, so that concurrent compilations never see a partial file.
bool write_file(const std::string& path, const std::string& content, std::string& error) {
    std::string temporary = path + unique_suffix();
    {
        std::ofstream out(temporary, std::ios::binary);
        out << content;
        if (!out.good()) {
            error = "cannot write " + temporary;
            return false;
        }
    }
    if (rename(temporary.c_str(), path.c_str()) != 0) {
        error = "cannot rename " + temporary + ": " + strerror(errno);
        return false;
    }
    return true;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
}

// Runs a command with its stdout and stderr into `output`; returns its exit status, or -1 when it did not start.
int run(const std::vector<std::string>& command, const std::string& log_path, std::string& output) {
    std::vector<char*> argv;
    for (const std::string& word : command) argv.push_back(const_cast<char*>(word.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t child = 0;
    int error = posix_spawnp(&child, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
        output = "cannot run " + command[0] + ": " + strerror(error) + " (AIDGE_EMULATOR_CXX names the compiler)\n";
        return -1;
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    output = read_file(log_path);
    unlink(log_path.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Options.

struct Options {
    std::vector<std::string> host;  // -D, -U and -I, for the host compiler
    std::vector<std::string> real;  // all but the target architecture, for the real NVRTC
};

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

Options parse_options(int count, const char* const* options) {
    Options parsed;
    for (int i = 0; i < count; ++i) {
        std::string option = options[i];
        // NVRTC options that take their value as the next option.
        bool separate = (option == "-D" || option == "-U" || option == "-I" || option == "-arch" ||
                         option == "--gpu-architecture") && i + 1 < count;
        std::string value = separate ? options[++i] : "";
        if (starts_with(option, "-arch") || starts_with(option, "--gpu-architecture")) continue;
        parsed.real.push_back(option);
        if (separate) parsed.real.push_back(value);
        if (separate) parsed.host.push_back(option + value);
        else if (starts_with(option, "-D") || starts_with(option, "-U") || starts_with(option, "-I"))
            parsed.host.push_back(option);
        else if (starts_with(option, "--define-macro=")) parsed.host.push_back("-D" + option.substr(15));
        else if (starts_with(option, "--undefine-macro=")) parsed.host.push_back("-U" + option.substr(17));
        else if (starts_with(option, "--include-path=")) parsed.host.push_back("-I" + option.substr(15));
        // Anything else (--use_fast_math, -default-device, --std=, -lineinfo, --fmad=, ...) means nothing on the CPU.
    }
    return parsed;
}

// ---------------------------------------------------------------------------------------------------------------
// The real NVRTC.

struct RealNvrtc {
    std::string error;  // why it could not be loaded
    int (*create)(void**, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
    int (*destroy)(void**) = nullptr;
    int (*compile)(void*, int, const char* const*) = nullptr;
    int (*log_size)(void*, size_t*) = nullptr;
    int (*log)(void*, char*) = nullptr;
};

const RealNvrtc& real_nvrtc(const std::string& path) {
    static std::mutex mutex;
    static std::map<std::string, RealNvrtc> loaded;
    std::lock_guard<std::mutex> lock(mutex);
    auto known = loaded.find(path);
    if (known != loaded.end()) return known->second;
    RealNvrtc& real = loaded[path];
    // Its own symbols first: this library exports the same names.
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!library) {
        real.error = std::string("cannot load AIDGE_EMULATOR_NVRTC: ") + dlerror();
        return real;
    }
    real.create = reinterpret_cast<decltype(real.create)>(dlsym(library, "nvrtcCreateProgram"));
    real.destroy = reinterpret_cast<decltype(real.destroy)>(dlsym(library, "nvrtcDestroyProgram"));
    real.compile = reinterpret_cast<decltype(real.compile)>(dlsym(library, "nvrtcCompileProgram"));
    real.log_size = reinterpret_cast<decltype(real.log_size)>(dlsym(library, "nvrtcGetProgramLogSize"));
    real.log = reinterpret_cast<decltype(real.log)>(dlsym(library, "nvrtcGetProgramLog"));
    if (!real.create || !real.destroy || !real.compile || !real.log_size || !real.log)
        real.error = "AIDGE_EMULATOR_NVRTC=" + path + " lacks the NVRTC functions";
    return real;
}

// Compiles the program with the real NVRTC for compute_90. A success is remembered in the cache directory.
int cross_check(Program& program, const std::string& nvrtc_path, const Options& options, const std::string& cache) {
    struct stat info {};
    stat(nvrtc_path.c_str(), &info);
    Hash hash;
    hash.add(program.source).add(program.name).add(nvrtc_path);
    hash.add(std::to_string(info.st_size)).add(std::to_string(info.st_mtime));  // another NVRTC at the same path
    for (const auto& header : program.headers) hash.add(header.first).add(header.second);
    for (const std::string& option : options.real) hash.add(option);
    std::string verdict = cache + "/" + hash.hex() + ".nvrtc-ok";
    if (file_exists(verdict)) return NVRTC_SUCCESS;

    const RealNvrtc& real = real_nvrtc(nvrtc_path);
    if (!real.error.empty()) {
        program.log = real.error + "\n";
        return NVRTC_ERROR_INTERNAL_ERROR;
    }
    std::vector<const char*> header_texts, header_names;
    for (const auto& header : program.headers) {
        header_names.push_back(header.first.c_str());
        header_texts.push_back(header.second.c_str());
    }
    std::vector<const char*> arguments{"--gpu-architecture=compute_90"};
    for (const std::string& option : options.real) arguments.push_back(option.c_str());
    void* handle = nullptr;
    int status = real.create(&handle, program.source.c_str(), program.name.c_str(), int(header_texts.size()),
                             header_texts.data(), header_names.data());
    if (status != NVRTC_SUCCESS) {
        program.log = "the real NVRTC could not create the program\n";
        return status;
    }
    status = real.compile(handle, int(arguments.size()), arguments.data());
    size_t log_size = 0;
    real.log_size(handle, &log_size);
    std::string log(log_size, '\0');
    if (log_size > 0) real.log(handle, &log[0]);
    real.destroy(&handle);
    program.log = log.c_str();
    if (status == NVRTC_SUCCESS) {
        std::string ignored;
        write_file(verdict, "", ignored);  // a lost verdict only costs a compilation
    }
    return status;
}

// ---------------------------------------------------------------------------------------------------------------
// The host compilation.

std::string escape_for_line_directive(const std::string& name) {
    std::string escaped;
    for (char c : name) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += c;
    }
    return escaped;
}

int compile_for_host(Program& program, const Options& options, const std::string& cache, bool checked) {
    const char* configured = getenv("AIDGE_EMULATOR_CXX");
    std::vector<std::string> command;
    std::istringstream words(configured && *configured ? configured : AIDGE_EMU_DEFAULT_CXX);
    for (std::string word; words >> word;) command.push_back(word);

    std::string error;
    std::string header_path = cache + "/emulation-" + Hash().add(kEmulationHeader).hex() + ".h";
    if (!file_exists(header_path) && !write_file(header_path, kEmulationHeader, error)) {
        program.log = error + "\n";
        return NVRTC_ERROR_INTERNAL_ERROR;
    }

    Hash hash;
    hash.add(program.source).add(program.name).add(kEmulationHeader);
    for (const std::string& word : command) hash.add(word);
    for (const std::string& option : options.host) hash.add(option);
    for (const auto& header : program.headers) hash.add(header.first).add(header.second);
    std::string stem = cache + "/" + hash.hex();
    std::string library = stem + ".so";
    if (!file_exists(library)) {
        std::string text = "#line 1 \"" + escape_for_line_directive(program.name) + "\"\n" + program.source +
                           "\n#line 1 \"aidge-emulator-entries\"\n";
        std::string all_text = program.source;
        for (const auto& header : program.headers) all_text += "\n" + header.second;
        if (names_a_barrier(strip_comments(all_text)))
            text += "extern \"C\" AIDGE_EMU_EXPORT const int aidge_emu_uses_barriers = 1;\n";
        for (const Kernel& kernel : find_kernels(strip_comments(program.source))) {
            text += "AIDGE_EMU_ENTRY(" + kernel.name + ")\n";
            if (!kernel.max_threads.empty())
                text += "AIDGE_EMU_MAX_THREADS(" + kernel.name + ", " + kernel.max_threads + ")\n";
        }
        if (!write_file(stem + ".cpp", text, error)) {
            program.log = error + "\n";
            return NVRTC_ERROR_INTERNAL_ERROR;
        }
        std::string include_directory = stem + ".include";
        for (const auto& header : program.headers) {
            std::string path = include_directory + "/" + header.first;
            if (!make_private_directory(path.substr(0, path.rfind('/')), error) ||
                !write_file(path, header.second, error)) {
                program.log = error + "\n";
                return NVRTC_ERROR_INTERNAL_ERROR;
            }
        }
        std::string temporary = library + unique_suffix();
        // -O1 without strict aliasing: kernel sources pun types through pointers the way CUDA lets them. Stack clash
        // protection probes large frames page by page, so that an emulated thread overflowing its stack hits the
        // guard page below it rather than the stack of its neighbour.
        for (const char* flag : {"-std=c++17", "-O1", "-fno-strict-aliasing", "-fstack-clash-protection", "-shared",
                                 "-fPIC", "-fvisibility=hidden", "-w", "-Wno-unknown-pragmas", "-include"})
            command.push_back(flag);
        command.push_back(header_path);
        if (!program.headers.empty()) command.push_back("-I" + include_directory);
        command.insert(command.end(), options.host.begin(), options.host.end());
        for (const std::string& word : {std::string("-o"), temporary, stem + ".cpp"}) command.push_back(word);
        std::string output;
        int status = run(command, stem + ".log" + unique_suffix(), output);
        if (status != 0) {
            unlink(temporary.c_str());
            program.log = (checked ? "The source is valid CUDA (checked by the real NVRTC), but the emulator cannot "
                                     "compile it for the CPU:\n" : "") + output;
            bool started = !(status < 0 && output.rfind("cannot run", 0) == 0);
            return started ? NVRTC_ERROR_COMPILATION : NVRTC_ERROR_INTERNAL_ERROR;
        }
        if (rename(temporary.c_str(), library.c_str()) != 0) {
            program.log = "cannot rename " + temporary + ": " + strerror(errno) + "\n";
            return NVRTC_ERROR_INTERNAL_ERROR;
        }
    }
    program.ptx = std::string(kImageMagic) + library + "\n";
    return NVRTC_SUCCESS;
}

const char* const kNvrtcNames[] = {
    "NVRTC_SUCCESS",
    "NVRTC_ERROR_OUT_OF_MEMORY",
    "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
    "NVRTC_ERROR_INVALID_INPUT",
    "NVRTC_ERROR_INVALID_PROGRAM",
    "NVRTC_ERROR_INVALID_OPTION",
    "NVRTC_ERROR_COMPILATION",
    "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
    "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
    "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
    "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
    "NVRTC_ERROR_INTERNAL_ERROR",
};

}  // namespace
}  // namespace aidge_emu

using namespace aidge_emu;

AIDGE_EMU_EXPORT int nvrtcVersion(int* major, int* minor) {
    if (!major || !minor) return NVRTC_ERROR_INVALID_INPUT;
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT const char* nvrtcGetErrorString(int result) {
    if (result < 0 || result >= int(sizeof kNvrtcNames / sizeof kNvrtcNames[0])) return "NVRTC_ERROR unknown";
    return kNvrtcNames[result];
}

AIDGE_EMU_EXPORT int nvrtcCreateProgram(void** program, const char* source, const char* name, int header_count,
                                        const char* const* headers, const char* const* include_names) {
    if (!program) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!source || header_count < 0 || (header_count > 0 && (!headers || !include_names)))
        return NVRTC_ERROR_INVALID_INPUT;
    auto created = std::make_unique<Program>();
    created->source = source;
    created->name = name && *name ? name : "default_program";
    for (int i = 0; i < header_count; ++i) {
        if (!headers[i] || !include_names[i] || include_names[i][0] == '/' || strstr(include_names[i], ".."))
            return NVRTC_ERROR_INVALID_INPUT;
        created->headers.emplace_back(include_names[i], headers[i]);
    }
    std::lock_guard<std::mutex> lock(g_programs_mutex);
    *program = created.get();
    g_programs.insert(created.release());
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT int nvrtcDestroyProgram(void** program) {
    if (!program) return NVRTC_ERROR_INVALID_PROGRAM;
    std::lock_guard<std::mutex> lock(g_programs_mutex);
    auto it = g_programs.find(static_cast<Program*>(*program));
    if (it == g_programs.end()) return NVRTC_ERROR_INVALID_PROGRAM;
    delete *it;
    g_programs.erase(it);
    *program = nullptr;
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT int nvrtcCompileProgram(void* handle, int option_count, const char* const* options) {
    Program* program = find_program(handle);
    if (!program) return NVRTC_ERROR_INVALID_PROGRAM;
    if (option_count < 0 || (option_count > 0 && !options)) return NVRTC_ERROR_INVALID_INPUT;
    for (int i = 0; i < option_count; ++i)
        if (!options[i]) return NVRTC_ERROR_INVALID_INPUT;
    program->log.clear();
    program->ptx.clear();
    Options parsed = parse_options(option_count, options);
    std::string error;
    std::string cache = cache_directory(error);
    if (cache.empty()) {
        program->log = error + " (AIDGE_EMULATOR_CACHE names the cache directory)\n";
        return NVRTC_ERROR_INTERNAL_ERROR;
    }
    const char* real = getenv("AIDGE_EMULATOR_NVRTC");
    bool checked = real && *real;
    if (checked) {
        int status = cross_check(*program, real, parsed, cache);
        if (status != NVRTC_SUCCESS) return status;
    }
    std::string real_log = program->log;  // the real NVRTC's warnings, if any
    int status = compile_for_host(*program, parsed, cache, checked);
    if (status == NVRTC_SUCCESS) program->log = real_log;
    return status;
}

AIDGE_EMU_EXPORT int nvrtcGetPTXSize(void* handle, size_t* size) {
    Program* program = find_program(handle);
    if (!program || program->ptx.empty()) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!size) return NVRTC_ERROR_INVALID_INPUT;
    *size = program->ptx.size() + 1;
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT int nvrtcGetPTX(void* handle, char* ptx) {
    Program* program = find_program(handle);
    if (!program || program->ptx.empty()) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!ptx) return NVRTC_ERROR_INVALID_INPUT;
    memcpy(ptx, program->ptx.c_str(), program->ptx.size() + 1);
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT int nvrtcGetProgramLogSize(void* handle, size_t* size) {
    Program* program = find_program(handle);
    if (!program) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!size) return NVRTC_ERROR_INVALID_INPUT;
    *size = program->log.size() + 1;
    return NVRTC_SUCCESS;
}

AIDGE_EMU_EXPORT int nvrtcGetProgramLog(void* handle, char* log) {
    Program* program = find_program(handle);
    if (!program) return NVRTC_ERROR_INVALID_PROGRAM;
    if (!log) return NVRTC_ERROR_INVALID_INPUT;
    memcpy(log, program->log.c_str(), program->log.size() + 1);
    return NVRTC_SUCCESS;
}
