# Runs watchdog_probe under mpirun and requires the job to fail within
# BOUND seconds, with the watchdog's message naming the collective, its size
# and the caller's context. Usage:
#   cmake -DMPIRUN="mpirun;-np" -DPROBE=path -DBOUND=15 -P expect_watchdog_abort.cmake
string(TIMESTAMP started "%s" UTC)
execute_process(COMMAND ${MPIRUN} 2 ${PROBE}
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output TIMEOUT ${BOUND})
string(TIMESTAMP finished "%s" UTC)
math(EXPR elapsed "${finished} - ${started}")
message("${output}")
if(status STREQUAL "0")
  message(FATAL_ERROR "the job exited 0: the watchdog did not fire")
elseif(NOT status MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not end within ${BOUND} s (${status})")
endif()
if(NOT output MATCHES "MPI allreduce of 4000 bytes \\(step 120\\) timed out after 2 s")
  message(FATAL_ERROR "no watchdog message naming the allreduce, its size and context")
endif()
message("the job failed with status ${status} after ${elapsed} s, as it should")
