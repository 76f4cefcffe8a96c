# pg_set_warnings(target): the project's warning set; -Werror when PG_WERROR is ON (CI).
# Vendored llhttp and generated protobuf-c code do not get these.
function(pg_set_warnings tgt)
    target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wshadow -Wstrict-prototypes
                           -Wmissing-prototypes -Wformat=2)
    if(PG_WERROR)
        target_compile_options(${tgt} PRIVATE -Werror)
    endif()
endfunction()
