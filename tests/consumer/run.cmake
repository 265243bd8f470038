# Installs the build into a fresh prefix, builds tests/consumer against it and runs it.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/build
                        -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer against the installed package failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed")
endif()
# The installed command runs from its prefix (its RUNPATH is relative) and says its version.
execute_process(COMMAND ${WORK_DIR}/prefix/bin/mpibatch --version OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(rc OR NOT out MATCHES "^mpibatch [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "the installed mpibatch --version gave ${rc}: ${out}")
endif()
execute_process(COMMAND ${WORK_DIR}/prefix/bin/mpibatch jobs OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(rc OR NOT out MATCHES "python \\(version 1\\)")
  message(FATAL_ERROR "the installed mpibatch jobs gave ${rc}: ${out}")
endif()

set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
execute_process(COMMAND mpirun -n 2 --oversubscribe ${WORK_DIR}/build/consumer
                        ${WORK_DIR}/consumer.h5 RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the consumer failed: ${rc}")
endif()

# The user's own job gets the whole command line: run it under mpirun, then export.
execute_process(COMMAND mpirun -n 2 --oversubscribe ${WORK_DIR}/build/my_jobs run square --grid x=1..5
                        --store ${WORK_DIR}/square.h5 --progress none RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "my_jobs run failed: ${rc}")
endif()
execute_process(COMMAND ${WORK_DIR}/build/my_jobs export ${WORK_DIR}/square.h5 --format jsonl
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(rc OR NOT out MATCHES "\"x\":5,\"y\":25")
  message(FATAL_ERROR "my_jobs export gave: ${out}")
endif()

# The installed command's python job runs its ranks in python3, with the module it installed.
file(WRITE ${WORK_DIR}/who.py
     "def who(a: int) -> str:\n    return open('/proc/self/comm').read().strip()\n")
execute_process(COMMAND mpirun -n 2 --oversubscribe ${WORK_DIR}/prefix/bin/mpibatch run python
                        --function who:who --grid a=1..3 --store ${WORK_DIR}/who.h5 --progress none
                WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the installed mpibatch run python failed: ${rc}")
endif()
execute_process(COMMAND ${WORK_DIR}/prefix/bin/mpibatch export ${WORK_DIR}/who.h5 --format jsonl
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(rc OR NOT out MATCHES "\"value\":\"python3")
  message(FATAL_ERROR "the installed python job did not run in python3: ${out}")
endif()
