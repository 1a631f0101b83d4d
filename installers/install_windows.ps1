# Install or uninstall Deflicker on Windows: a thin wrapper around install.py.
#   powershell -ExecutionPolicy Bypass -File install_windows.ps1                 # %CommonProgramFiles%\OFX\Plugins (as Administrator)
#   powershell -ExecutionPolicy Bypass -File install_windows.ps1 install --user  # %LOCALAPPDATA%\OFX\Plugins
#   powershell -ExecutionPolicy Bypass -File install_windows.ps1 uninstall
# Any install.py option passes through (--resolve, --nuke, --prefix ROOT, --bundle PATH).
$ErrorActionPreference = "Stop"
$python = Get-Command py -ErrorAction SilentlyContinue
$pyArgs = @("-3")
if (-not $python) { $python = Get-Command python -ErrorAction SilentlyContinue; $pyArgs = @() }
if (-not $python) {
    Write-Error "install: error: Python 3 is needed to run the installer (https://www.python.org/downloads/windows/)"
    exit 3
}
$action = "install"
$rest = @($args)
if ($rest.Count -gt 0) { $action = $rest[0]; $rest = $rest[1..($rest.Count)] | Where-Object { $_ -ne $null } }
# -I (isolated): PYTHONPATH and the user's site-packages cannot change what runs as Administrator.
& $python.Source @pyArgs -I (Join-Path $PSScriptRoot "install.py") $action --platform win32 @rest
exit $LASTEXITCODE
