@echo off
:: replwatch from Windows Task Scheduler: one pass (--once) every hour.
::
:: Needs a Windows build of replwatch installed as C:\Program Files\replwatch\replwatch.exe.
:: Run this file once from an elevated Command Prompt. Edit the three folders first.
::
:: Quoting: /TR is ONE argument to schtasks, the whole command line of the task, in double
:: quotes. Inside it every path with spaces is quoted with \" (the program path too), so the
:: task runs:
::   "C:\Program Files\replwatch\replwatch.exe" -s "C:\Users\me\My Documents" -r "D:\Mirror\My Documents" -l "C:\ProgramData\replwatch\logs" --once
:: Never end a quoted path with a backslash (\"D:\Mirror\\" would escape the quote), and keep
:: the /TR text under 262 characters (a schtasks limit).
::
:: /SC HOURLY /MO 1: every hour from /ST. A pass still running when the next is due is not
:: started twice (the default "do not start a new instance" policy).
:: /RU SYSTEM: runs whether or not anyone is logged on; SYSTEM can read C:\Users\me. To run
:: as yourself instead (mapped network drives, your permissions): /RU "%USERDOMAIN%\%USERNAME%" /RP
::
:: Check it:    schtasks /Query /TN "replwatch mirror" /V /FO LIST
:: Run it now:  schtasks /Run /TN "replwatch mirror"
:: Remove it:   schtasks /Delete /TN "replwatch mirror" /F
:: Last Result 0 = mirrored, 3 = some entries could not be mirrored (see the log), 1 = fatal.

schtasks /Create /F /TN "replwatch mirror" /SC HOURLY /MO 1 /ST 00:17 /RU SYSTEM /RL HIGHEST ^
  /TR "\"C:\Program Files\replwatch\replwatch.exe\" -s \"C:\Users\me\My Documents\" -r \"D:\Mirror\My Documents\" -l \"C:\ProgramData\replwatch\logs\" --once"
