using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SafeKit.Cli.Lab;

/// <summary>
/// The lab's small PKI: one authority (PEM, given to the nodes as <c>api.ca_file</c> and to
/// clients as <c>--ca</c>) and one certificate per node it signed, valid for the node's name, its
/// addresses and loopback. So the lab verifies TLS the way a production cluster with its own CA does.
/// </summary>
internal static class LabCertificates
{
    public static void Create(LabTopology topology)
    {
        var now = DateTimeOffset.UtcNow;
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var authorityRequest = new CertificateRequest($"CN=SafeKit lab {topology.Prefix} CA", authorityKey, HashAlgorithmName.SHA256);
        authorityRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        authorityRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        authorityRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(authorityRequest.PublicKey, false));
        using var authority = authorityRequest.CreateSelfSigned(now.AddDays(-1), now.AddYears(1));
        File.WriteAllText(topology.CaPath, authority.ExportCertificatePem() + "\n");
        foreach (var i in topology.NodeIndexes)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest($"CN={topology.NodeName(i)}, O=SafeKit lab", key, HashAlgorithmName.SHA256);
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName(topology.NodeName(i));
            names.AddDnsName("localhost");
            foreach (var address in new[] { topology.NodeV4(i), topology.NodeV6(i), IPAddress.Loopback, IPAddress.IPv6Loopback })
            {
                names.AddIpAddress(address);
            }

            request.CertificateExtensions.Add(names.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
            using var signed = request.Create(authority, now.AddDays(-1), now.AddMonths(11), RandomNumberGenerator.GetBytes(16));
            using var withKey = signed.CopyWithPrivateKey(key);
            var path = Path.Combine(topology.NodeDirectory(i), "api.pfx");
            Directory.CreateDirectory(topology.NodeDirectory(i));
            File.WriteAllBytes(path, withKey.Export(X509ContentType.Pkcs12));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
