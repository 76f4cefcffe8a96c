# llhttp is not packaged as a library in Debian 12: node-llhttp ships its generated C
# sources and header. Build them as a static, PIC, hidden-visibility library so that it can
# be linked into libprofagent.so without exporting llhttp_* into the host process.
set(PG_LLHTTP_SRC_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (Debian: node-llhttp)")
set(PG_LLHTTP_INC_DIR "/usr/share/include/llhttp" CACHE PATH "llhttp header (Debian: node-llhttp)")
foreach(f api.c http.c llhttp.c)
    if(NOT EXISTS "${PG_LLHTTP_SRC_DIR}/${f}")
        message(FATAL_ERROR
            "llhttp C sources not found: ${PG_LLHTTP_SRC_DIR}/${f} is missing.\n"
            "Install them with: apt-get install node-llhttp (or run scripts/install-deps.sh),\n"
            "or point -DPG_LLHTTP_SRC_DIR= / -DPG_LLHTTP_INC_DIR= at a copy.")
    endif()
endforeach()
if(NOT EXISTS "${PG_LLHTTP_INC_DIR}/llhttp.h")
    message(FATAL_ERROR "llhttp.h not found in ${PG_LLHTTP_INC_DIR}: apt-get install node-llhttp")
endif()
add_library(llhttp STATIC
    ${PG_LLHTTP_SRC_DIR}/api.c ${PG_LLHTTP_SRC_DIR}/http.c ${PG_LLHTTP_SRC_DIR}/llhttp.c)
target_include_directories(llhttp SYSTEM PUBLIC ${PG_LLHTTP_INC_DIR})
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
target_compile_options(llhttp PRIVATE -w)
